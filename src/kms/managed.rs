//! AWS managed keys: the `alias/aws/<service>` keys an AWS service keeps in a customer's account
//! (`KeyManager` `AWS`).
//!
//! - Created on first use, as AWS does when a service first needs one (services call
//!   DescribeKey on the predefined alias): a request of an account naming one of its
//!   predefined aliases (`alias/aws/<service>` for a service in [`SERVICES`]) that no key has
//!   yet creates the key and the alias. Until then ListAliases shows the alias without a
//!   `TargetKeyId`, as AWS does.
//! - Its key policy is AWS's fixed policy for AWS managed keys (`policy`): any principal of the
//!   account may use it *through the service* (`kms:ViaService`, `kms:CallerAccount`), and the
//!   account may read its metadata. Nothing else is allowed to anyone — not PutKeyPolicy,
//!   tagging, disabling, deletion, rotation settings or on-demand rotation — so those answer
//!   `AccessDeniedException` from the ordinary authorization, as on AWS. The policy cannot be
//!   changed (PutKeyPolicy is not allowed by it) and the key row is sealed.
//! - Rotated every 365 days by the scheduler (rotation on, `RotationPeriodInDays` 365); the
//!   setting cannot change (Enable/DisableKeyRotation are not allowed by the policy).
//! - Aliases under `alias/aws/` are refused to users (`NotAuthorizedException`).
//!
//! "Via service" here: AWS services call KMS on their customers' behalf and KMS knows the
//! service (`kms:ViaService` = `<service>.<region>.amazonaws.com`). kms-bridge has no AWS
//! services; instead a configured set of principals stands for them (`service_principals`:
//! `<service>=<principal ARN>`): a request signed by such a principal carries
//! `kms:ViaService` = `<service>.<region of the request>.amazonaws.com`. The principal acts in
//! its own account (`kms:CallerAccount`), so it uses that account's AWS managed keys.

use std::collections::HashMap;

use uuid::Uuid;

use super::aliases::MAX_ALIASES_PER_KEY;
use super::texts;
use super::{
    material_id, token_object_id, token_object_label, Kms, KmsError, RequestContext, Result,
};
use crate::model::{KeyManager, KeySpec, KeyState, KeyUsage, Origin};
use crate::store::{AliasRecord, KeyRecord, StoreError, VersionRecord};

/// Prefix of alias names reserved for AWS managed keys.
pub const RESERVED_PREFIX: &str = "alias/aws/";

/// Rotation period of AWS managed keys (fixed).
const ROTATION_DAYS: i64 = 365;

/// A service that has a predefined alias (`alias/aws/<alias>`).
#[derive(Debug)]
pub struct Service {
    /// The alias suffix: `alias/aws/<alias>`.
    pub alias: &'static str,
    /// The service's endpoint prefix in `kms:ViaService` (`ec2` for EBS).
    pub via: &'static str,
    /// The service's name in the key policy's statement id.
    pub name: &'static str,
    /// What the key protects, in its description.
    pub data: &'static str,
    /// Whether the service creates grants (its policy allows CreateGrant, and RevokeGrant to
    /// the account).
    pub grants: bool,
}

/// The predefined aliases. The policy wording of S3, EBS and Lambda and the descriptions of
/// S3, EBS and Glue are AWS's as recorded from real accounts; the others follow the same
/// pattern (AWS publishes no list).
pub const SERVICES: &[Service] = &[
    svc("acm", "acm", "ACM", "ACM data", true),
    svc("dynamodb", "dynamodb", "DynamoDB", "DynamoDB data", true),
    svc("ebs", "ec2", "EBS", "EBS volumes", true),
    svc(
        "elasticfilesystem",
        "elasticfilesystem",
        "EFS",
        "EFS data",
        true,
    ),
    svc("es", "es", "Elasticsearch", "Elasticsearch data", true),
    svc("glue", "glue", "Glue", "Glue data", true),
    svc(
        "kinesisvideo",
        "kinesisvideo",
        "Kinesis Video Streams",
        "Kinesis Video Streams data",
        true,
    ),
    svc("lambda", "lambda", "AWS Lambda", "Lambda functions", true),
    svc("rds", "rds", "RDS", "RDS data", true),
    svc("redshift", "redshift", "Redshift", "Redshift data", true),
    svc("s3", "s3", "S3", "S3 objects", false),
    svc(
        "secretsmanager",
        "secretsmanager",
        "Secrets Manager",
        "Secrets Manager data",
        true,
    ),
    svc("ssm", "ssm", "SSM", "SSM data", true),
    svc("xray", "xray", "X-Ray", "X-Ray data", true),
];

const fn svc(
    alias: &'static str,
    via: &'static str,
    name: &'static str,
    data: &'static str,
    grants: bool,
) -> Service {
    Service {
        alias,
        via,
        name,
        data,
        grants,
    }
}

/// The service of a predefined alias name.
pub fn predefined(alias: &str) -> Option<&'static Service> {
    let suffix = alias.strip_prefix(RESERVED_PREFIX)?;
    SERVICES.iter().find(|s| s.alias == suffix)
}

/// The description AWS gives its managed keys (a format reserved for them).
pub fn description(s: &Service) -> String {
    format!(
        "Default master key that protects my {} when no other key is defined",
        s.data
    )
}

/// AWS's key policy for the AWS managed key of `s` in `account` and `region`, in the layout
/// GetKeyPolicy shows AWS's own policies in.
pub fn policy(account: &str, region: &str, s: &Service) -> String {
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut usage = vec![
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
    ];
    let mut metadata = vec!["kms:Describe*", "kms:Get*", "kms:List*"];
    if s.grants {
        usage.push("kms:CreateGrant");
        metadata.push("kms:RevokeGrant");
    }
    usage.push("kms:DescribeKey");
    format!(
        "{{\n  \"Version\" : \"2012-10-17\",\n  \"Id\" : \"auto-{alias}\",\n  \"Statement\" : [ {{\n    \
         \"Sid\" : \"Allow access through {name} for all principals in the account that are \
         authorized to use {name}\",\n    \"Effect\" : \"Allow\",\n    \"Principal\" : {{\n      \
         \"AWS\" : \"*\"\n    }},\n    \"Action\" : [ {usage} ],\n    \"Resource\" : \"*\",\n    \
         \"Condition\" : {{\n      \"StringEquals\" : {{\n        \"kms:CallerAccount\" : \
         \"{account}\",\n        \"kms:ViaService\" : \"{via}.{region}.amazonaws.com\"\n      \
         }}\n    }}\n  }}, {{\n    \"Sid\" : \"Allow direct access to key metadata to the \
         account\",\n    \"Effect\" : \"Allow\",\n    \"Principal\" : {{\n      \"AWS\" : \
         \"arn:aws:iam::{account}:root\"\n    }},\n    \"Action\" : [ {metadata} ],\n    \
         \"Resource\" : \"*\"\n  }} ]\n}}",
        alias = s.alias,
        name = s.name,
        via = s.via,
        usage = list(&usage),
        metadata = list(&metadata),
    )
}

/// Which principals stand for which AWS service (`service_principals`): their requests carry
/// `kms:ViaService`.
#[derive(Debug, Clone, Default)]
pub struct ViaServices(HashMap<String, String>);

impl ViaServices {
    /// From `<service>=<principal ARN>` entries; a principal stands for one service.
    pub fn parse(entries: &[String]) -> std::result::Result<ViaServices, String> {
        let mut map = HashMap::new();
        for e in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let Some((service, arn)) = e.split_once('=') else {
                return Err(format!("{e:?} is not <service>=<principal ARN>"));
            };
            let service = service.trim();
            if service.is_empty()
                || !service
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(format!("{service:?} is not a service name like s3 or ec2"));
            }
            let arn = arn.trim();
            if !principal_arn(arn) {
                return Err(format!(
                    "{arn:?} is not a principal ARN like arn:aws:iam::111122223333:role/name"
                ));
            }
            if let Some(other) = map.insert(arn.to_string(), service.to_string()) {
                if other != service {
                    return Err(format!("{arn} stands for both {other} and {service}"));
                }
            }
        }
        Ok(ViaServices(map))
    }

    /// `kms:ViaService` of a request by `principal_arn` in `region`, if it stands for a service.
    pub fn via_service(&self, principal_arn: &str, region: &str) -> Option<String> {
        self.0
            .get(principal_arn)
            .map(|s| format!("{s}.{region}.amazonaws.com"))
    }
}

/// `arn:aws:iam::<12 digits>:(user|role)/<name>` or `…:root`.
fn principal_arn(arn: &str) -> bool {
    let Some(rest) = arn.strip_prefix("arn:aws:iam::") else {
        return false;
    };
    let Some((account, resource)) = rest.split_once(':') else {
        return false;
    };
    account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && (resource == "root"
            || resource
                .strip_prefix("user/")
                .or_else(|| resource.strip_prefix("role/"))
                .is_some_and(|n| !n.is_empty()))
}

impl Kms {
    /// The key of a predefined alias of the caller's own account that no key has yet: the AWS
    /// managed key, created now (None for any other alias).
    pub(super) async fn managed_alias_target(
        &self,
        ctx: &RequestContext,
        account: &str,
        alias: &str,
    ) -> Result<Option<Uuid>> {
        match predefined(alias) {
            Some(s) if account == ctx.account => Ok(Some(self.create_managed_key(ctx, s).await?)),
            _ => Ok(None),
        }
    }

    /// Create the AWS managed key of `s` in the caller's account and region, with its alias.
    /// Intent first (key `Creating`, version pending), then the token object, then the alias —
    /// whoever inserts the alias first owns the name, a concurrent creation is undone and
    /// answers with the winner's key — then completion. Reconciliation finishes or removes
    /// (with its alias) a creation a crash interrupted.
    async fn create_managed_key(&self, ctx: &RequestContext, s: &Service) -> Result<Uuid> {
        let now = self.now();
        let key_id = Uuid::new_v4();
        let mut key = KeyRecord {
            key_id,
            region: ctx.region.clone(),
            account: ctx.account.clone(),
            description: description(s),
            key_spec: KeySpec::SymmetricDefault,
            key_usage: KeyUsage::EncryptDecrypt,
            origin: Origin::AwsKms,
            state: KeyState::Creating,
            created_at: now,
            deletion_date: None,
            pending_window_days: None,
            rotation_enabled: true,
            rotation_period_days: Some(ROTATION_DAYS),
            rotation_base: Some(now),
            current_version: 1,
            policy: policy(&ctx.account, &ctx.region, s),
            revision: 0,
            custom_key_store_id: None,
            key_manager: KeyManager::Aws,
            mac: Vec::new(),
            multi_region: None,
        };
        let version = VersionRecord {
            key_id,
            version: 1,
            token_object_id: token_object_id(&key_id, 1),
            material_id: material_id(&key_id, 1),
            created_at: now,
            rotation_type: None,
            pending: true,
        };
        // AWS creates its managed keys itself: the service's permit, not the caller's.
        let token = self.service_permit().key_token(self, &key)?;
        self.store.insert_key(&key, &version, &[]).await?;
        let token = &token;
        let undo = |why: &'static str| async move {
            if let Err(e) = token.destroy(token_object_id(&key_id, 1)).await {
                tracing::error!(%key_id, error = %e, why, "could not destroy an unfinished AWS managed key; reconciliation will");
                return;
            }
            if let Err(e) = self.store.delete_unfinished_key(key_id).await {
                tracing::error!(%key_id, error = %e, why, "could not undo an unfinished AWS managed key; reconciliation will");
            }
        };
        if let Err(e) = token
            .generate_aes_key(token_object_id(&key_id, 1), token_object_label(&key_id, 1))
            .await
        {
            undo("generation failed").await;
            return Err(e.into());
        }
        let name = format!("{RESERVED_PREFIX}{}", s.alias);
        let alias = AliasRecord {
            region: ctx.region.clone(),
            account: ctx.account.clone(),
            name: name.clone(),
            key_id,
            created_at: now,
            updated_at: now,
        };
        match self.store.insert_alias(&alias, MAX_ALIASES_PER_KEY).await {
            Ok(()) => {}
            Err(StoreError::AlreadyExists) => {
                undo("another request created it first").await;
                return self
                    .store
                    .get_alias(&ctx.region, &ctx.account, &name)
                    .await?
                    .map(|a| a.key_id)
                    .ok_or_else(|| KmsError::Conflict(texts::MANAGED_KEY_BEING_CREATED.into()));
            }
            Err(e) => {
                undo("the alias could not be made").await;
                return Err(e.into());
            }
        }
        key.state = KeyState::Enabled;
        self.store.activate_version(&key, 1).await?;
        tracing::info!(%key_id, alias = %name, account = %ctx.account, region = %ctx.region, "created an AWS managed key");
        Ok(key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predefined_aliases_and_their_policy() {
        assert_eq!(predefined("alias/aws/s3").map(|s| s.via), Some("s3"));
        assert_eq!(predefined("alias/aws/ebs").map(|s| s.via), Some("ec2"));
        assert!(predefined("alias/aws/unknown").is_none());
        assert!(predefined("alias/s3").is_none());
        let s3 = predefined("alias/aws/s3").unwrap();
        let p = policy("111122223333", "eu-west-1", s3);
        let doc: serde_json::Value = serde_json::from_str(&p).expect("valid JSON");
        let st = &doc["Statement"];
        assert_eq!(
            st[0]["Condition"]["StringEquals"]["kms:ViaService"],
            "s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            st[0]["Condition"]["StringEquals"]["kms:CallerAccount"],
            "111122223333"
        );
        assert_eq!(st[0]["Principal"]["AWS"], "*");
        assert_eq!(st[1]["Principal"]["AWS"], "arn:aws:iam::111122223333:root");
        assert!(!p.contains("CreateGrant"), "S3's policy has no grants");
        let ebs = policy(
            "111122223333",
            "eu-west-1",
            predefined("alias/aws/ebs").unwrap(),
        );
        assert!(ebs.contains("\"kms:CreateGrant\"") && ebs.contains("\"kms:RevokeGrant\""));
        for s in SERVICES {
            crate::policy::Policy::parse(
                &policy("111122223333", "us-east-1", s),
                crate::policy::PolicyKind::Key,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", s.alias));
        }
        assert_eq!(
            description(s3),
            "Default master key that protects my S3 objects when no other key is defined"
        );
    }

    #[test]
    fn service_principals_parse() {
        let v = ViaServices::parse(&[
            "s3=arn:aws:iam::111122223333:role/storage".into(),
            " ec2 = arn:aws:iam::111122223333:user/compute ".into(),
        ])
        .unwrap();
        assert_eq!(
            v.via_service("arn:aws:iam::111122223333:role/storage", "us-east-1")
                .as_deref(),
            Some("s3.us-east-1.amazonaws.com")
        );
        assert_eq!(
            v.via_service("arn:aws:iam::111122223333:user/compute", "eu-west-1")
                .as_deref(),
            Some("ec2.eu-west-1.amazonaws.com")
        );
        assert!(v
            .via_service("arn:aws:iam::111122223333:user/other", "us-east-1")
            .is_none());
        for bad in [
            "s3",
            "S3=arn:aws:iam::111122223333:role/x",
            "s3=role/x",
            "s3=arn:aws:iam::1111:role/x",
            "s3=arn:aws:iam::111122223333:group/x",
        ] {
            assert!(ViaServices::parse(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(ViaServices::parse(&[
            "s3=arn:aws:iam::111122223333:role/x".into(),
            "ec2=arn:aws:iam::111122223333:role/x".into()
        ])
        .is_err());
    }
}
