//! Row integrity: every key, grant, identity-policy and access-key row carries a MAC made in
//! the token (HMAC-SHA256 with the non-extractable system key `kms-bridge-system/row-mac/v1`)
//! over its contents (`store::Sealed`), and a row whose MAC does not verify is refused.
//! Someone who can write the database but not use the token cannot change a key's policy,
//! state, usage, spec, origin, key store or account, add a grant or an identity policy, or move
//! an access key to another principal and have it honoured: a `get_key` of such a row fails
//! (`KMSInternalException`, logged), a forged access key does not authenticate, and listings
//! and lookups leave such rows out.
//!
//! `store::cached::CachedStore` does the sealing and verifying (a row is verified once per
//! cache fill, so cached reads cost nothing) with the `TokenSealer` made here. Not covered:
//! rolling a row back to an older, genuinely sealed version of itself (the MAC has no counter
//! outside the database); rows written before sealing existed carry no MAC and are refused.

use async_trait::async_trait;

use crate::store::{Result, RowSealer, StoreError};
use crate::token::{HashAlg, Token, TokenError};

pub const ROW_MAC_KEY_ID: &[u8] = b"kms-bridge-system/row-mac/v1";
const ROW_MAC_KEY_LABEL: &str = "kms-bridge-system/row-mac/v1";

/// Row MACs made in the token.
pub struct TokenSealer {
    token: Token,
}

impl TokenSealer {
    /// The sealer of `token`; creates the row MAC key there on first use.
    pub async fn open(token: Token) -> std::result::Result<TokenSealer, TokenError> {
        if token
            .ensure_hmac_key(ROW_MAC_KEY_ID, ROW_MAC_KEY_LABEL, 32)
            .await?
        {
            tracing::info!("created the row MAC key in the token");
        }
        Ok(TokenSealer { token })
    }
}

#[async_trait]
impl RowSealer for TokenSealer {
    async fn mac(&self, input: Vec<u8>) -> Result<Vec<u8>> {
        self.token
            .hmac(ROW_MAC_KEY_ID.to_vec(), HashAlg::Sha256, input)
            .await
            .map_err(|e| StoreError::Unavailable(format!("row MAC: {e}")))
    }
}
