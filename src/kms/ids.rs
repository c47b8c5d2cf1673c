//! Identifiers as AWS spells them: key ids, key ARNs, alias names and alias ARNs.
//! Strings from the wire are parsed here once.

use uuid::Uuid;

use super::error::{KmsError, Result};
use super::texts;

/// A key id as callers write it: a UUID, or a multi-Region key's `mrk-` + 32 hex digits
/// (the same in every region of its set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyName {
    Uuid(Uuid),
    Mrk(Uuid),
}

impl KeyName {
    /// The store's key id of the key this names in `region` (a multi-Region key has one row
    /// per region; see `mrk_row_id`).
    pub fn in_region(&self, region: &str) -> Uuid {
        match self {
            KeyName::Uuid(u) => *u,
            KeyName::Mrk(m) => mrk_row_id(m, region),
        }
    }
}

impl std::fmt::Display for KeyName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyName::Uuid(u) => write!(f, "{}", u.hyphenated()),
            KeyName::Mrk(m) => write!(f, "mrk-{}", m.simple()),
        }
    }
}

/// The store's key id of the member of multi-Region set `mrk` in `region`: a version-8 UUID
/// made of SHA-256 over both (domain-separated). Deterministic, so a key id or a ciphertext
/// names the member in any region without an index; never a version-4 UUID, so it cannot meet
/// a single-Region key's id.
pub fn mrk_row_id(mrk: &Uuid, region: &str) -> Uuid {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"kms-bridge multi-Region key row\0");
    h.update(mrk.as_bytes());
    h.update(region.as_bytes());
    let digest = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    Uuid::from_bytes(b)
}

/// The ways a request can name a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    Id(KeyName),
    KeyArn {
        region: String,
        account: String,
        id: KeyName,
    },
    Alias(AliasName),
    AliasArn {
        region: String,
        account: String,
        alias: AliasName,
    },
}

/// A syntactically valid alias name (`alias/…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AliasName(String);

impl AliasName {
    pub fn parse(s: &str) -> Result<AliasName> {
        let bad = |what: &str| KmsError::Validation(texts::alias_name_constraint(s, what));
        if s.chars().count() > 256 {
            return Err(bad(&texts::length_at_most(256)));
        }
        let Some(rest) = s.strip_prefix("alias/") else {
            return Err(KmsError::Validation(texts::ALIAS_PREFIX.into()));
        };
        if rest.is_empty() {
            return Err(KmsError::InvalidAliasName(texts::alias_name_empty(s)));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'_' | b'-'))
        {
            return Err(bad(&texts::pattern(texts::NAME_PATTERN)));
        }
        Ok(AliasName(s.to_owned()))
    }

    /// `alias/aws/…` names are reserved for AWS managed keys.
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with("alias/aws/")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl KeyRef {
    pub fn parse(s: &str) -> Result<KeyRef> {
        if let Some(rest) = s.strip_prefix("arn:") {
            return parse_arn(s, rest);
        }
        if s.starts_with("alias/") {
            return Ok(KeyRef::Alias(
                AliasName::parse(s).map_err(|_| invalid_key_id(s))?,
            ));
        }
        parse_key_name(s)
            .map(KeyRef::Id)
            .ok_or_else(|| invalid_key_id(s))
    }

    pub fn is_alias(&self) -> bool {
        matches!(self, KeyRef::Alias(_) | KeyRef::AliasArn { .. })
    }
}

fn invalid_key_id(s: &str) -> KmsError {
    KmsError::NotFound(texts::invalid_key_id(s))
}

/// Key ids are lowercase canonical UUIDs or `mrk-` + 32 lowercase hex digits; nothing else is
/// accepted.
pub fn parse_key_name(s: &str) -> Option<KeyName> {
    if let Some(hex) = s.strip_prefix("mrk-") {
        if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        return Uuid::parse_str(hex).ok().map(KeyName::Mrk);
    }
    if s.len() != 36 {
        return None;
    }
    let u = Uuid::parse_str(s).ok()?;
    (u.hyphenated().to_string() == s).then_some(KeyName::Uuid(u))
}

fn parse_arn(full: &str, rest: &str) -> Result<KeyRef> {
    let invalid = || KmsError::NotFound(texts::invalid_arn(full));
    // partition:service:region:account:resource
    let mut parts = rest.splitn(5, ':');
    let (Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(invalid());
    };
    if !partition.starts_with("aws")
        || service != "kms"
        || region.is_empty()
        || account.len() != 12
        || !account.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    let (region, account) = (region.to_owned(), account.to_owned());
    if let Some(id) = resource.strip_prefix("key/") {
        let id = parse_key_name(id).ok_or_else(invalid)?;
        return Ok(KeyRef::KeyArn {
            region,
            account,
            id,
        });
    }
    if resource.starts_with("alias/") {
        let alias = AliasName::parse(resource).map_err(|_| invalid())?;
        return Ok(KeyRef::AliasArn {
            region,
            account,
            alias,
        });
    }
    Err(invalid())
}

pub fn key_arn(region: &str, account: &str, id: &KeyName) -> String {
    format!("arn:aws:kms:{region}:{account}:key/{id}")
}

pub fn alias_arn(region: &str, account: &str, alias: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:{alias}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn parses_every_form() {
        let id = KeyName::Uuid(Uuid::parse_str(ID).unwrap());
        assert_eq!(KeyRef::parse(ID).unwrap(), KeyRef::Id(id));
        assert_eq!(
            KeyRef::parse(&format!("arn:aws:kms:us-east-1:111122223333:key/{ID}")).unwrap(),
            KeyRef::KeyArn {
                region: "us-east-1".into(),
                account: "111122223333".into(),
                id
            }
        );
        assert!(
            matches!(KeyRef::parse("alias/x").unwrap(), KeyRef::Alias(a) if a.as_str() == "alias/x")
        );
        assert!(matches!(
            KeyRef::parse("arn:aws:kms:eu-west-1:111122223333:alias/app/k").unwrap(),
            KeyRef::AliasArn { region, alias, .. } if region == "eu-west-1" && alias.as_str() == "alias/app/k"
        ));
    }

    #[test]
    fn multi_region_ids() {
        let hex = "1234abcd12ab34cd56ef1234567890ab";
        let mrk = Uuid::parse_str(hex).unwrap();
        let name = KeyName::Mrk(mrk);
        assert_eq!(
            KeyRef::parse(&format!("mrk-{hex}")).unwrap(),
            KeyRef::Id(name)
        );
        assert_eq!(name.to_string(), format!("mrk-{hex}"));
        assert!(matches!(
            KeyRef::parse(&format!("arn:aws:kms:eu-west-1:111122223333:key/mrk-{hex}")).unwrap(),
            KeyRef::KeyArn { id, .. } if id == name
        ));
        // One row per region, stable, never a v4 UUID, never the set id itself.
        let east = name.in_region("us-east-1");
        assert_eq!(east, name.in_region("us-east-1"));
        assert_ne!(east, name.in_region("eu-west-1"));
        assert_ne!(east, mrk);
        assert_eq!(east.get_version_num(), 8);
        for bad in [
            "mrk-fake-key-id",
            "mrk-1234ABCD12AB34CD56EF1234567890AB",
            "mrk-1234abcd12ab34cd56ef1234567890a",
            "mrk-1234abcd-12ab-34cd-56ef-1234567890ab",
        ] {
            assert!(
                matches!(KeyRef::parse(bad), Err(KmsError::NotFound(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "not-a-key",
            "1234ABCD-12AB-34CD-56EF-1234567890AB",
            "arn:aws:kms:us-east-1:111122223333:key/nope",
            "arn:aws:s3:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:1111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "alias/",
            "alias/has space",
        ] {
            assert!(
                matches!(KeyRef::parse(bad), Err(KmsError::NotFound(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn alias_rules() {
        assert!(AliasName::parse("alias/aws/ebs").unwrap().is_reserved());
        assert!(AliasName::parse("alias/ok_name-1:2/3").is_ok());
        assert!(AliasName::parse("aliasx").is_err());
        assert!(AliasName::parse(&format!("alias/{}", "a".repeat(251))).is_err());
    }
}
