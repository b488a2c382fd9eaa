//! The framing of sealed tenant data: a section carried *beside* what it
//! belongs to (an events-stream message, an audit record), never inside user
//! data. Readers decide whether something is sealed by this framing alone, so
//! no value a client writes — `{"$sealed": 1}` included — is ever mistaken for
//! it.

use serde::{Deserialize, Serialize};

use crate::ids::TenantId;

/// Tenant data encrypted with the tenant's data key (AES-256-GCM). What it
/// holds, and where that goes back, is the business of its container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sealed {
    /// Whose key seals it.
    pub tenant: TenantId,
    /// The 96-bit nonce, base64.
    pub nonce: String,
    /// The ciphertext with its authentication tag, base64.
    pub ct: String,
}
