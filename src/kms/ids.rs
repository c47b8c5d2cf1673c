//! Identifiers as AWS spells them: key ids, key ARNs, alias names and alias ARNs.
//! Strings from the wire are parsed here once.

use uuid::Uuid;

use super::error::{KmsError, Result};

/// The ways a request can name a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    Id(Uuid),
    KeyArn {
        region: String,
        account: String,
        id: Uuid,
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
        let bad = |why: &str| KmsError::InvalidAliasName(format!("Alias name {s:?} {why}"));
        if s.len() > 256 {
            return Err(bad("is longer than 256 characters"));
        }
        let Some(rest) = s.strip_prefix("alias/") else {
            return Err(KmsError::Validation(super::texts::ALIAS_PREFIX.into()));
        };
        if rest.is_empty() {
            return Err(bad("must have a name after 'alias/'"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'_' | b'-'))
        {
            return Err(bad("must match the pattern ^[a-zA-Z0-9:/_-]+$"));
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
        parse_uuid(s)
            .map(KeyRef::Id)
            .ok_or_else(|| invalid_key_id(s))
    }

    pub fn is_alias(&self) -> bool {
        matches!(self, KeyRef::Alias(_) | KeyRef::AliasArn { .. })
    }
}

fn invalid_key_id(s: &str) -> KmsError {
    KmsError::NotFound(format!("Invalid keyId '{s}'"))
}

/// Key ids are lowercase canonical UUIDs; nothing else is accepted.
fn parse_uuid(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    let u = Uuid::parse_str(s).ok()?;
    (u.hyphenated().to_string() == s).then_some(u)
}

fn parse_arn(full: &str, rest: &str) -> Result<KeyRef> {
    let invalid = || KmsError::NotFound(format!("Invalid arn {full}"));
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
        let id = parse_uuid(id).ok_or_else(invalid)?;
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

pub fn key_arn(region: &str, account: &str, id: &Uuid) -> String {
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
        let id = Uuid::parse_str(ID).unwrap();
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
