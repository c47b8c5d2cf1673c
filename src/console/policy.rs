//! The key policy the AWS KMS console writes for a key it creates: the account statement,
//! then key administrators, key users and (except for HMAC keys) the grants statement for
//! AWS services, with the statement ids and actions AWS's console uses.

use serde::Serialize;
use serde_json::{json, Value};

/// A key policy with its members in the order AWS's console writes them.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyPolicy {
    pub version: &'static str,
    pub id: &'static str,
    pub statement: Vec<Statement>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub sid: &'static str,
    pub effect: &'static str,
    pub principal: Value,
    pub action: Value,
    pub resource: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<Value>,
}

/// What the generated policy depends on.
pub struct PolicyInput<'a> {
    pub account: &'a str,
    pub key_spec: &'a str,
    pub key_usage: &'a str,
    pub admins: &'a [String],
    /// "Allow key administrators to delete this key".
    pub admins_delete: bool,
    pub users: &'a [String],
}

/// Key administrators' actions ("Allow access for Key Administrators").
fn admin_actions(delete: bool) -> Vec<&'static str> {
    let mut a = vec![
        "kms:Create*",
        "kms:Describe*",
        "kms:Enable*",
        "kms:List*",
        "kms:Put*",
        "kms:Update*",
        "kms:Revoke*",
        "kms:Disable*",
        "kms:Get*",
        "kms:Delete*",
        "kms:TagResource",
        "kms:UntagResource",
    ];
    if delete {
        a.extend(["kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"]);
    }
    a.push("kms:RotateKeyOnDemand");
    a
}

/// Key users' actions ("Allow use of the key"), by key type and usage.
fn user_actions(key_spec: &str, key_usage: &str) -> Vec<&'static str> {
    match (key_spec, key_usage) {
        ("SYMMETRIC_DEFAULT", _) => vec![
            "kms:Encrypt",
            "kms:Decrypt",
            "kms:ReEncrypt*",
            "kms:GenerateDataKey*",
            "kms:DescribeKey",
        ],
        (_, "ENCRYPT_DECRYPT") => vec![
            "kms:Encrypt",
            "kms:Decrypt",
            "kms:ReEncrypt*",
            "kms:DescribeKey",
            "kms:GetPublicKey",
        ],
        (_, "SIGN_VERIFY") => vec![
            "kms:DescribeKey",
            "kms:GetPublicKey",
            "kms:Sign",
            "kms:Verify",
        ],
        (_, "KEY_AGREEMENT") => vec![
            "kms:DescribeKey",
            "kms:GetPublicKey",
            "kms:DeriveSharedSecret",
        ],
        (_, "ENCAPSULATE_DECAPSULATE") => vec![
            "kms:DescribeKey",
            "kms:GetPublicKey",
            "kms:Encapsulate",
            "kms:Decapsulate",
        ],
        _ => vec!["kms:DescribeKey", "kms:GenerateMac", "kms:VerifyMac"],
    }
}

/// A principal element: one ARN as a string, several as a list.
fn principals(arns: &[String]) -> Value {
    match arns {
        [one] => json!({ "AWS": one }),
        many => json!({ "AWS": many }),
    }
}

/// The console's default key policy for these choices.
pub fn default_key_policy(p: &PolicyInput) -> KeyPolicy {
    let mut statement = vec![Statement {
        sid: "Enable IAM User Permissions",
        effect: "Allow",
        principal: json!({ "AWS": format!("arn:aws:iam::{}:root", p.account) }),
        action: json!("kms:*"),
        resource: "*",
        condition: None,
    }];
    if !p.admins.is_empty() {
        statement.push(Statement {
            sid: "Allow access for Key Administrators",
            effect: "Allow",
            principal: principals(p.admins),
            action: json!(admin_actions(p.admins_delete)),
            resource: "*",
            condition: None,
        });
    }
    if !p.users.is_empty() {
        statement.push(Statement {
            sid: "Allow use of the key",
            effect: "Allow",
            principal: principals(p.users),
            action: json!(user_actions(p.key_spec, p.key_usage)),
            resource: "*",
            condition: None,
        });
        if !p.key_spec.starts_with("HMAC_") {
            statement.push(Statement {
                sid: "Allow attachment of persistent resources",
                effect: "Allow",
                principal: principals(p.users),
                action: json!(["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]),
                resource: "*",
                condition: Some(json!({ "Bool": { "kms:GrantIsForAWSResource": "true" } })),
            });
        }
    }
    KeyPolicy {
        version: "2012-10-17",
        id: "key-consolepolicy-3",
        statement,
    }
}

/// The key administrators and users of a policy that is exactly the console's default for
/// them (for this key's spec and usage), else None: AWS's console shows its "default view"
/// only for such a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultView {
    pub admins: Vec<String>,
    pub admins_delete: bool,
    pub users: Vec<String>,
}

pub fn default_view(
    text: &str,
    account: &str,
    key_spec: &str,
    key_usage: &str,
) -> Option<DefaultView> {
    let stored: Value = serde_json::from_str(text).ok()?;
    let statements = stored["Statement"].as_array()?;
    let by_sid = |sid: &str| statements.iter().find(|s| s["Sid"] == sid);
    let arns = |s: Option<&Value>| -> Vec<String> {
        match s.map(|s| &s["Principal"]["AWS"]) {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    let admin = by_sid("Allow access for Key Administrators");
    let view = DefaultView {
        admins: arns(admin),
        admins_delete: admin.map_or(true, |s| {
            s["Action"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "kms:ScheduleKeyDeletion"))
        }),
        users: arns(by_sid("Allow use of the key")),
    };
    let generated = serde_json::to_value(default_key_policy(
        &view.input(account, key_spec, key_usage),
    ))
    .ok()?;
    (generated == stored).then_some(view)
}

impl DefaultView {
    pub fn input<'a>(
        &'a self,
        account: &'a str,
        key_spec: &'a str,
        key_usage: &'a str,
    ) -> PolicyInput<'a> {
        PolicyInput {
            account,
            key_spec,
            key_usage,
            admins: &self.admins,
            admins_delete: self.admins_delete,
            users: &self.users,
        }
    }
}

/// The policy as the review step shows it (indented, members in AWS's order).
pub fn pretty(policy: &KeyPolicy) -> String {
    serde_json::to_string_pretty(policy).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_policy_has_the_four_console_statements_and_parses() {
        let admins = vec!["arn:aws:iam::111122223333:user/admin".to_owned()];
        let users = vec![
            "arn:aws:iam::111122223333:user/a".to_owned(),
            "arn:aws:iam::111122223333:role/b".to_owned(),
        ];
        let text = pretty(&default_key_policy(&PolicyInput {
            account: "111122223333",
            key_spec: "SYMMETRIC_DEFAULT",
            key_usage: "ENCRYPT_DECRYPT",
            admins: &admins,
            admins_delete: true,
            users: &users,
        }));
        assert!(
            text.starts_with("{\n  \"Version\": \"2012-10-17\",\n  \"Id\""),
            "{text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        let sids: Vec<&str> = v["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Sid"].as_str().unwrap())
            .collect();
        assert_eq!(
            sids,
            [
                "Enable IAM User Permissions",
                "Allow access for Key Administrators",
                "Allow use of the key",
                "Allow attachment of persistent resources"
            ]
        );
        assert_eq!(v["Statement"][1]["Principal"]["AWS"], admins[0].as_str());
        assert!(v["Statement"][1]["Action"]
            .as_array()
            .unwrap()
            .contains(&json!("kms:ScheduleKeyDeletion")));
        crate::policy::Policy::parse(&text, crate::policy::PolicyKind::Key).unwrap();
        // The default view recognizes it, and nothing else.
        let view = default_view(
            &text,
            "111122223333",
            "SYMMETRIC_DEFAULT",
            "ENCRYPT_DECRYPT",
        )
        .unwrap();
        assert_eq!(
            (view.admins, view.users, view.admins_delete),
            (admins.clone(), users.clone(), true)
        );
        assert!(default_view(&text, "111122223333", "RSA_2048", "SIGN_VERIFY").is_none());
        assert!(default_view(
            &text.replace("kms:Get*", "kms:Get"),
            "111122223333",
            "SYMMETRIC_DEFAULT",
            "ENCRYPT_DECRYPT"
        )
        .is_none());
        // Without "allow key administrators to delete this key"; an HMAC key has no grants
        // statement.
        let v = serde_json::to_value(default_key_policy(&PolicyInput {
            account: "111122223333",
            key_spec: "HMAC_256",
            key_usage: "GENERATE_VERIFY_MAC",
            admins: &admins,
            admins_delete: false,
            users: &users,
        }))
        .unwrap();
        let st = v["Statement"].as_array().unwrap();
        assert_eq!(st.len(), 3);
        assert!(!st[1]["Action"]
            .as_array()
            .unwrap()
            .contains(&json!("kms:ScheduleKeyDeletion")));
        assert_eq!(
            st[2]["Action"],
            json!(["kms:DescribeKey", "kms:GenerateMac", "kms:VerifyMac"])
        );
    }
}
