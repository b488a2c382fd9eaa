//! Where the projection stands, as the projector and a rebuild report it.

/// Where the projection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ProjectionStatus {
    /// The last stream position applied to PostgreSQL.
    pub applied: u64,
    /// The stream's last position when the projector (re)started or a
    /// rebuild began; the projection has caught up once `applied` reaches it.
    pub target: u64,
    pub caught_up: bool,
    /// A rebuild is in progress (the current tables keep being served and
    /// updated meanwhile).
    pub rebuilding: bool,
    /// How far the rebuild in progress has come.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebuild: Option<RebuildProgress>,
}

/// How far a rebuild has replayed the stream into its fresh tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct RebuildProgress {
    /// The last position applied to the fresh tables.
    pub applied: u64,
    /// The stream's last position when the rebuild started.
    pub target: u64,
}
