//! The largest request body accepted: `ECS_MAX_BODY_BYTES`, bounded by what
//! one message of the events stream can hold, so a body the API accepts never
//! fails later as a message NATS refuses.

/// Room in a message for everything around the client's data: the
/// envelope's fields, the command's metadata (role, request and correlation
/// ids of up to 200 characters each), the aggregate id and scope.
pub const ENVELOPE_RESERVE: usize = 8 * 1024;

/// The body limit in effect, in bytes (a request extension, so a 413 can name it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(pub usize);

impl BodyLimit {
    /// The configured limit, bounded by the NATS server's `max_payload`:
    /// a message is the body plus the envelope, and tenant data is sealed as
    /// base64, which adds a third.
    pub fn new(configured: usize, max_payload: usize) -> BodyLimit {
        let fits = max_payload.saturating_sub(ENVELOPE_RESERVE) / 4 * 3;
        BodyLimit(configured.min(fits))
    }

    /// The detail of a 413 answer.
    pub fn exceeded(self) -> String {
        format!(
            "the body is larger than the limit of {} bytes (ECS_MAX_BODY_BYTES, bounded by the \
             NATS server's max_payload)",
            self.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_limit_holds_when_messages_are_larger() {
        assert_eq!(
            BodyLimit::new(64 * 1024, 8 * 1024 * 1024),
            BodyLimit(64 * 1024)
        );
    }

    #[test]
    fn the_server_payload_limit_bounds_the_body() {
        // NATS's default max_payload is 1 MiB: a 1 MiB body cannot fit.
        let limit = BodyLimit::new(1024 * 1024, 1024 * 1024);
        assert_eq!(limit, BodyLimit((1024 * 1024 - ENVELOPE_RESERVE) / 4 * 3));
        assert!(limit.0 * 4 / 3 + ENVELOPE_RESERVE <= 1024 * 1024);
    }

    #[test]
    fn a_tiny_server_limit_accepts_no_body() {
        assert_eq!(BodyLimit::new(1024, 100), BodyLimit(0));
    }
}
