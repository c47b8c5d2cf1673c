use super::*;

const ACCT: &str = "111122223333";
const OTHER: &str = "444455556666";
const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

const fn ev(explicit_deny: bool, allow_direct: bool, allow_via_account: bool) -> Evaluation {
    Evaluation {
        explicit_deny,
        allow_direct,
        allow_via_account,
    }
}
const NONE: Evaluation = ev(false, false, false);
const DIRECT: Evaluation = ev(false, true, false);
const VIA: Evaluation = ev(false, false, true);

fn iam(acct: &str, resource: &str) -> String {
    format!("arn:aws:iam::{acct}:{resource}")
}

fn key_policy(json: &str) -> Policy {
    Policy::parse(json, PolicyKind::Key).unwrap_or_else(|e| panic!("{e}\n{json}"))
}

fn run(p: &Policy, caller: &str, action: &str, resource: &str, context: &Context) -> Evaluation {
    let principal_account = caller.split(':').nth(4).unwrap_or_default();
    p.evaluate(&Request {
        principal_arn: caller,
        principal_account,
        action,
        resource,
        context,
    })
}

fn eval(p: &Policy, caller: &str, action: &str) -> Evaluation {
    run(p, caller, action, KEY, &Context::new())
}

/// A key policy with one statement of `members`, plus `"Effect":"Allow"`, `"Principal":"*"`
/// and `"Resource":"*"` for those of the three (or their Not- forms) not in `members`.
fn one_statement(members: &str) -> Policy {
    let defaults = [
        ("Effect", "\"Allow\""),
        ("Principal", "\"*\""),
        ("Resource", "\"*\""),
    ];
    let mut all = vec![members.to_owned()];
    for (name, value) in defaults {
        if !members.contains(&format!("\"{name}\":"))
            && !members.contains(&format!("\"Not{name}\":"))
        {
            all.push(format!("\"{name}\":{value}"));
        }
    }
    key_policy(&format!(r#"{{"Statement":[{{{}}}]}}"#, all.join(",")))
}

fn ctx(pairs: &[(&str, &[&str])]) -> Context {
    let mut c = Context::new();
    for (k, v) in pairs {
        c.set_multi(k, v.iter().map(|s| s.to_string()).collect());
    }
    c
}

const DEFAULT_POLICY: &str = r#"{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : { "AWS" : "arn:aws:iam::111122223333:root" },
    "Action" : "kms:*",
    "Resource" : "*"
  } ]
}"#;

#[test]
fn default_key_policy() {
    let p = key_policy(DEFAULT_POLICY);
    assert_eq!(eval(&p, &iam(ACCT, "root"), "kms:Encrypt"), DIRECT);
    assert_eq!(eval(&p, &iam(ACCT, "user/alice"), "kms:Encrypt"), VIA);
    assert_eq!(eval(&p, &iam(ACCT, "role/app"), "KMS:encrypt"), VIA);
    assert_eq!(eval(&p, &iam(OTHER, "user/mallory"), "kms:Encrypt"), NONE);
    assert_eq!(eval(&p, &iam(OTHER, "root"), "kms:Encrypt"), NONE);
    assert_eq!(eval(&p, &iam(ACCT, "root"), "s3:GetObject"), NONE);
    // The bare account id is equivalent to the root ARN.
    let bare = key_policy(&DEFAULT_POLICY.replace("arn:aws:iam::111122223333:root", ACCT));
    assert_eq!(eval(&bare, &iam(ACCT, "root"), "kms:Decrypt"), DIRECT);
    assert_eq!(eval(&bare, &iam(ACCT, "user/bob"), "kms:Decrypt"), VIA);
}

const CONSOLE_POLICY: &str = r#"{
  "Version": "2012-10-17",
  "Id": "key-consolepolicy-3",
  "Statement": [
    {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
     "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
    {"Sid": "Allow access for Key Administrators", "Effect": "Allow",
     "Principal": {"AWS": "arn:aws:iam::111122223333:user/myKeyManager"},
     "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*",
                "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
                "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion"],
     "Resource": "*"},
    {"Sid": "Allow use of the key", "Effect": "Allow",
     "Principal": {"AWS": ["arn:aws:iam::111122223333:user/myKeyUser"]},
     "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                "kms:DescribeKey"],
     "Resource": "*"},
    {"Sid": "Allow attachment of persistent resources", "Effect": "Allow",
     "Principal": {"AWS": "arn:aws:iam::111122223333:user/myKeyUser"},
     "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
     "Resource": "*",
     "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}
  ]
}"#;

#[test]
fn console_key_policy() {
    let p = key_policy(CONSOLE_POLICY);
    let (manager, user) = (iam(ACCT, "user/myKeyManager"), iam(ACCT, "user/myKeyUser"));
    let aws_resource = ctx(&[("kms:GrantIsForAWSResource", &["true"])]);
    let mut not_aws = Context::new();
    not_aws.set_bool("kms:GrantIsForAWSResource", false);
    let empty = Context::new();
    // (caller, action, context, expected allow_direct); allow_via_account always holds
    // through the root statement for these same-account callers.
    let cases: &[(&str, &str, &Context, bool)] = &[
        (&manager, "kms:DisableKey", &empty, true),
        (&manager, "kms:ScheduleKeyDeletion", &empty, true),
        (&manager, "kms:GetKeyPolicy", &empty, true),
        (&manager, "kms:Encrypt", &empty, false),
        (&manager, "kms:Decrypt", &empty, false),
        (&user, "kms:Encrypt", &empty, true),
        (&user, "kms:ReEncryptFrom", &empty, true),
        (&user, "kms:ReEncryptTo", &empty, true),
        (&user, "kms:GenerateDataKeyWithoutPlaintext", &empty, true),
        (&user, "kms:ScheduleKeyDeletion", &empty, false),
        (&user, "kms:PutKeyPolicy", &empty, false),
        (&user, "kms:CreateGrant", &aws_resource, true),
        (&user, "kms:CreateGrant", &not_aws, false),
        (&user, "kms:CreateGrant", &empty, false),
    ];
    for (caller, action, context, direct) in cases {
        let ev = run(&p, caller, action, KEY, context);
        assert_eq!(ev.allow_direct, *direct, "{caller} {action}");
        assert!(
            ev.allow_via_account && !ev.explicit_deny,
            "{caller} {action}"
        );
    }
    let outsider = iam(OTHER, "user/myKeyUser");
    assert_eq!(eval(&p, &outsider, "kms:Encrypt"), NONE);
}

/// Condition cases, one condition per line:
/// `operator | key | policy values (JSON) | request => expected; …`, where the request is
/// the key's values in the context: `-` = absent, `[]` = empty list, else comma-separated.
const CONDITION_CASES: &str = r#"
StringEquals | kms:EncryptionContext:department | "finance" | finance => true; hr => false; - => false
StringEquals | kms:EncryptionContext:department | ["hr","finance"] | finance => true; it => false
ForAllValues:StringEquals | kms:EncryptionContextKeys | ["department","project"] | department => true; [] => true; - => true; department,other => false; project,department => true
ForAnyValue:StringLike | kms:EncryptionContextKeys | "proj*" | department,project-x => true; department => false; - => false; [] => false
ForAllValues:StringNotEquals | kms:GrantOperations | "Decrypt" | Encrypt => true; Encrypt,Decrypt => false; - => true
ForAnyValue:StringNotEquals | kms:GrantOperations | "Decrypt" | Encrypt,Decrypt => true; Decrypt => false; - => false
ForAnyValue:StringEqualsIfExists | kms:GrantOperations | "Encrypt" | - => true; Decrypt => false
StringEquals | kms:ResourceAliases | "alias/a" | alias/b,alias/a => true; alias/b => false
StringNotEquals | kms:ResourceAliases | "alias/a" | alias/b,alias/a => false; alias/b => true; - => true
StringNotEquals | kms:CallerAccount | "111122223333" | - => true; 111122223333 => false; 444455556666 => true
StringEqualsIgnoreCase | aws:PrincipalTag/team | "Finance" | FINANCE => true; hr => false
StringNotEqualsIgnoreCase | aws:PrincipalTag/team | "Finance" | finance => false; hr => true
StringLike | kms:ViaService | "*.us-east-1.amazonaws.com" | s3.us-east-1.amazonaws.com => true; s3.eu-west-1.amazonaws.com => false
StringLike | aws:PrincipalTag/team | "fin?nce*" | finance-eu => true; Finance => false
StringNotLike | aws:PrincipalTag/team | "fin*" | Finance => true; finance => false; - => true
Null | kms:EncryptionContextKeys | "true" | - => true; [] => true; a => false
Null | aws:SourceIp | false | 10.0.0.1 => true; - => false
StringEqualsIfExists | kms:ViaService | "ec2.us-east-1.amazonaws.com" | - => true; ec2.us-east-1.amazonaws.com => true; s3.us-east-1.amazonaws.com => false
NumericLessThanEquals | kms:ScheduleKeyDeletionPendingWindowInDays | "10" | 7 => true; 10 => true; 30 => false; - => false; abc => false
NumericLessThan | kms:ScheduleKeyDeletionPendingWindowInDays | 10 | 9.5 => true; 10 => false
NumericGreaterThan | kms:RotationPeriodInDays | 90 | 365 => true; 90 => false
NumericGreaterThanEquals | kms:RotationPeriodInDays | [90, 400] | 90 => true; 89 => false
NumericEquals | kms:RotationPeriodInDays | 1.5 | 1.50 => true; 1 => false
NumericNotEquals | kms:RotationPeriodInDays | 7 | 7 => false; 8 => true; - => true
DateLessThan | aws:CurrentTime | "2026-01-01T00:00:00Z" | 2025-06-01T12:00:00Z => true; 2026-01-01T00:00:01Z => false; 2026-01-01T00:00:00Z => false; - => false
DateLessThanEquals | aws:CurrentTime | "2026-01-01T00:00:00Z" | 2026-01-01T00:00:00Z => true; 2026-01-01 => true
DateGreaterThanEquals | aws:CurrentTime | "2026-01-01" | 2026-01-01T00:00:00Z => true; 1767225600 => true; 1767225599 => false
DateGreaterThan | aws:CurrentTime | "2026-01-01T01:00:00+02:00" | 2025-12-31T23:30:00Z => true; 2025-12-31T22:30:00Z => false
DateEquals | aws:EpochTime | 1767225600 | 2026-01-01T00:00:00.000+00:00 => true; 1767225601 => false
DateNotEquals | aws:EpochTime | 1767225600 | - => true; 1767225600 => false; 1767225601 => true
DateLessThan | kms:ValidTo | "2030-01-01T00:00Z" | 1893455999.5 => true; 1893456000 => false
IpAddress | aws:SourceIp | ["10.0.0.0/8","192.168.1.1"] | 10.1.2.3 => true; 192.168.1.1 => true; 192.168.1.2 => false; 11.0.0.1 => false; not-an-ip => false; ::ffff:10.0.0.1 => true; 2001:db8::1 => false
IpAddress | aws:SourceIp | "0.0.0.0/0" | 203.0.113.9 => true; 2001:db8::1 => false
IpAddress | aws:SourceIp | "2001:db8::/32" | 2001:db8:1::5 => true; 2001:db9::1 => false; 10.0.0.1 => false
IpAddress | aws:SourceIp | "2001:db8::1" | 2001:db8::1 => true; 2001:db8::2 => false
NotIpAddress | aws:SourceIp | "10.0.0.0/8" | 10.0.0.1 => false; 8.8.8.8 => true; - => true
ArnLike | aws:PrincipalArn | "arn:aws:iam::111122223333:role/app-*" | arn:aws:iam::111122223333:role/app-web => true; arn:aws:iam::444455556666:role/app-web => false; arn:aws:iam::111122223333:user/app-x => false
ArnLike | aws:PrincipalArn | "arn:aws:iam::*:root" | arn:aws:iam::444455556666:root => true; arn:aws:iam::444455556666:user/root => false
ArnLike | aws:PrincipalArn | "arn:aws:*:root" | arn:aws:iam::444455556666:root => false
ArnEquals | aws:PrincipalArn | "arn:aws:iam::111122223333:user/alice" | arn:aws:iam::111122223333:user/alice => true; arn:aws:iam::111122223333:user/Alice => false
ArnNotEquals | aws:PrincipalArn | "arn:aws:iam::111122223333:user/alice" | arn:aws:iam::111122223333:user/bob => true; arn:aws:iam::111122223333:user/alice => false
ArnNotLike | aws:PrincipalArn | "arn:aws:iam::*:user/*" | - => true; arn:aws:iam::111122223333:role/r => true; arn:aws:iam::111122223333:user/u => false
Bool | aws:SecureTransport | "true" | true => true; false => false; - => false; TRUE => true
Bool | kms:GrantIsForAWSResource | true | true => true; yes => false
BoolIfExists | aws:SecureTransport | "False" | - => true; false => true; true => false
"#;

/// Evaluates `{"Condition": cond}` on an allow-everything statement.
fn condition_holds(cond: &str, context: &Context) -> bool {
    let p = one_statement(&format!(r#""Action":"kms:*","Condition":{cond}"#));
    run(&p, &iam(ACCT, "user/u"), "kms:Decrypt", KEY, context).allow_direct
}

#[test]
fn conditions() {
    let lines = CONDITION_CASES.lines().filter(|l| !l.is_empty());
    for line in lines {
        let [op, key, values, requests] = line.splitn(4, " | ").collect::<Vec<_>>()[..] else {
            panic!("bad case {line}");
        };
        let cond = format!(r#"{{"{op}":{{"{key}":{values}}}}}"#);
        for case in requests.split("; ") {
            let (request, expected) = case.split_once(" => ").expect("case has =>");
            let mut c = Context::new();
            match request {
                "-" => {}
                "[]" => c.set_multi(key, vec![]),
                values => c.set_multi(key, values.split(',').map(String::from).collect()),
            }
            assert_eq!(
                condition_holds(&cond, &c),
                expected == "true",
                "{cond} with {request}"
            );
        }
    }
    // Condition keys are case-insensitive, in the policy and in the context.
    let cond = r#"{"StringEquals":{"KMS:EncryptionContext:DEPARTMENT":"finance"}}"#;
    assert!(condition_holds(
        cond,
        &ctx(&[("kms:encryptioncontext:Department", &["finance"])])
    ));
    // AND across operators and across keys; an empty Condition always holds.
    let cond = r#"{"StringEquals":{"kms:CallerAccount":"111122223333"},"Bool":{"aws:SecureTransport":true}}"#;
    let both = ctx(&[
        ("kms:CallerAccount", &[ACCT]),
        ("aws:SecureTransport", &["true"]),
    ]);
    assert!(condition_holds(cond, &both));
    assert!(!condition_holds(
        cond,
        &ctx(&[("kms:CallerAccount", &[ACCT])])
    ));
    let cond = r#"{"StringEquals":{"kms:CallerAccount":"111122223333","kms:ViaService":"s3.amazonaws.com"}}"#;
    assert!(!condition_holds(
        cond,
        &ctx(&[("kms:CallerAccount", &[ACCT])])
    ));
    assert!(condition_holds("{}", &Context::new()));
}

#[test]
fn explicit_deny_and_allow_both_reported() {
    let p = key_policy(
        r#"{"Statement":[
            {"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:*","Resource":"*"},
            {"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:user/bob"},
             "Action":["kms:Decrypt"],"Resource":"*"},
            {"Effect":"Deny","Principal":{"AWS":"444455556666"},"Action":"kms:*","Resource":"*"}]}"#,
    );
    let bob = iam(ACCT, "user/bob");
    let deny_and_allow = ev(true, true, false);
    assert_eq!(eval(&p, &bob, "kms:Decrypt"), deny_and_allow);
    assert_eq!(eval(&p, &bob, "kms:Encrypt"), DIRECT);
    // An account principal in a Deny covers every principal of that account.
    let outsider = iam(OTHER, "role/x");
    assert_eq!(eval(&p, &outsider, "kms:Encrypt"), deny_and_allow);
    assert_eq!(deny_and_allow.merge(VIA), ev(true, true, true));
    assert_eq!(NONE.merge(NONE), NONE);
}

#[test]
fn negated_elements() {
    let alice = iam(ACCT, "user/alice");
    let p = one_statement(r#""NotAction":["kms:ScheduleKeyDeletion","kms:Disable*"]"#);
    assert_eq!(eval(&p, &alice, "kms:Encrypt"), DIRECT);
    assert_eq!(eval(&p, &alice, "kms:DisableKeyRotation"), NONE);
    assert_eq!(eval(&p, &alice, "kms:scheduleKEYdeletion"), NONE);

    let p = one_statement(
        r#""Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::111122223333:user/admin"]},"Action":"kms:PutKeyPolicy""#,
    );
    assert_eq!(eval(&p, &iam(ACCT, "user/admin"), "kms:PutKeyPolicy"), NONE);
    assert!(eval(&p, &alice, "kms:PutKeyPolicy").explicit_deny);
    assert_eq!(eval(&p, &alice, "kms:Encrypt"), NONE);

    let p = one_statement(r#""Effect":"Deny","NotPrincipal":{"AWS":"111122223333"},"Action":"*""#);
    assert_eq!(eval(&p, &alice, "kms:Encrypt"), NONE);
    assert!(eval(&p, &iam(OTHER, "user/eve"), "kms:Encrypt").explicit_deny);

    let p =
        one_statement(r#""Action":"kms:*","NotResource":"arn:aws:kms:*:111122223333:key/other-*""#);
    let other_key = "arn:aws:kms:us-east-1:111122223333:key/other-1";
    let none = Context::new();
    assert_eq!(run(&p, &alice, "kms:Encrypt", KEY, &none), DIRECT);
    assert_eq!(run(&p, &alice, "kms:Encrypt", other_key, &none), NONE);

    let p =
        one_statement(r#""Action":"kms:*","Resource":"arn:aws:kms:us-east-1:111122223333:key/*""#);
    assert_eq!(run(&p, &alice, "kms:Encrypt", KEY, &none), DIRECT);
    assert_eq!(run(&p, &alice, "kms:ListKeys", "*", &none), NONE);
}

/// `pattern action expected` per line.
const ACTION_CASES: &str = "
* kms:Encrypt true
kms:* kms:Encrypt true
kms:Encrypt* kms:Encrypt true
kms:Encrypt* kms:Decrypt false
kms:?ecrypt kms:Decrypt true
kms:?ecrypt kms:Encrypt false
kms:?ecrypt kms:ReDecrypt false
KMS:DECRYPT kms:decrypt true
kms:ReEncrypt* kms:ReEncryptFrom true
kms:GenerateDataKey* kms:GenerateDataKeyPairWithoutPlaintext true
kms:Get* kms:GenerateMac false
kms:*Key kms:DescribeKey true
kms:*Key kms:DescribeKeys false
kms:*a*b* kms:xaYbZ true
s3:* kms:Encrypt false
kms:Encrypt kms:Encrypt2 false
";

#[test]
fn action_patterns() {
    for line in ACTION_CASES.lines().filter(|l| !l.is_empty()) {
        let [pattern, action, expected] = line.split(' ').collect::<Vec<_>>()[..] else {
            panic!("bad case {line}");
        };
        assert_eq!(
            action_matches(pattern, action),
            expected == "true",
            "{line}"
        );
    }
    let p = one_statement(r#""Action":["kms:?ecrypt","kms:Describe*"]"#);
    let root = iam(ACCT, "root");
    assert_eq!(eval(&p, &root, "KMS:DECRYPT"), DIRECT);
    assert_eq!(eval(&p, &root, "kms:describekey"), DIRECT);
    assert_eq!(eval(&p, &root, "kms:Encrypt"), NONE);
}

#[test]
fn principals() {
    let p = one_statement(
        r#""Principal":{"AWS":"arn:aws:iam::111122223333:role/team/app"},"Action":"kms:*""#,
    );
    assert_eq!(eval(&p, &iam(ACCT, "role/team/app"), "kms:Encrypt"), DIRECT);
    let session = format!("arn:aws:sts::{ACCT}:assumed-role/app/session-1");
    assert_eq!(eval(&p, &session, "kms:Encrypt"), DIRECT);
    let other_session = format!("arn:aws:sts::{ACCT}:assumed-role/other/session-1");
    assert_eq!(eval(&p, &other_session, "kms:Encrypt"), NONE);
    assert_eq!(eval(&p, &iam(ACCT, "user/app"), "kms:Encrypt"), NONE);

    for any in [
        r#""*""#,
        r#"{"AWS":"*"}"#,
        r#"{"AWS":["111122223333","*"]}"#,
    ] {
        let p = one_statement(&format!(r#""Principal":{any},"Action":"kms:*""#));
        assert_eq!(
            eval(&p, &iam(OTHER, "user/x"), "kms:Encrypt"),
            DIRECT,
            "{any}"
        );
    }
    let p = one_statement(r#""Principal":{"Service":"dynamodb.amazonaws.com"},"Action":"kms:*""#);
    assert_eq!(eval(&p, "dynamodb.amazonaws.com", "kms:Encrypt"), DIRECT);
    assert_eq!(eval(&p, &iam(ACCT, "root"), "kms:Encrypt"), NONE);
}

#[test]
fn identity_policy() {
    let doc = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt"],
         "Resource":"arn:aws:kms:us-east-1:111122223333:key/*"},
        {"Effect":"Deny","Action":"kms:Decrypt","Resource":"*",
         "Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#;
    let p = Policy::parse(doc, PolicyKind::Identity).unwrap_or_else(|e| panic!("{e}"));
    let alice = iam(ACCT, "user/alice");
    assert_eq!(eval(&p, &alice, "kms:Encrypt"), DIRECT);
    assert_eq!(eval(&p, &alice, "kms:PutKeyPolicy"), NONE);
    let mut insecure = Context::new();
    insecure.set_bool("aws:SecureTransport", false);
    let ev = run(&p, &alice, "kms:Decrypt", KEY, &insecure);
    assert!(ev.explicit_deny && ev.allow_direct);
    // Identity policies must not have principals; key policies must.
    assert!(Policy::parse(DEFAULT_POLICY, PolicyKind::Identity).is_err());
    assert!(Policy::parse(doc, PolicyKind::Key).is_err());
}

#[test]
fn context_keys() {
    let mut c = Context::new();
    c.set("AWS:SourceIp", "10.0.0.1");
    c.set_multi("kms:EncryptionContextKeys", vec![]);
    assert_eq!(c.get("aws:sourceip"), Some(&["10.0.0.1".to_owned()][..]));
    assert_eq!(c.get("kms:EncryptionContextKeys"), None);
    assert_eq!(c.get("aws:CurrentTime"), None);
}

#[test]
fn known_actions() {
    assert_eq!(KNOWN_ACTIONS.len(), 57);
    assert!(
        KNOWN_ACTIONS.contains(&"kms:ReEncryptFrom") && KNOWN_ACTIONS.contains(&"kms:ReEncryptTo")
    );
    assert!(!KNOWN_ACTIONS.contains(&"kms:ReEncrypt"));
    let mut sorted = KNOWN_ACTIONS.to_vec();
    sorted.dedup();
    assert_eq!(sorted.len(), KNOWN_ACTIONS.len());
    assert!(KNOWN_ACTIONS.iter().all(|a| action_matches("kms:*", a)));
}

/// Rejected documents, one per line: `expected message fragment | document`, where the
/// document is a whole key policy (`{…}`), `S <members>` (a key policy with one statement
/// of those members), `I <members>` (the same as an identity policy), `C <condition>` (an
/// allow-all key-policy statement with that Condition), or other text (raw input).
const MALFORMED_CASES: &str = r#"
invalid policy JSON | not json
invalid policy JSON | {"Statement":[{"Effect":"Allow"}]
must be a JSON object, got array | []
Statement must not be empty | {"Statement":[]}
no Statement | {"Version":"2012-10-17"}
Statement must be an object or an array | {"Statement":"x"}
Statement[0] must be an object | {"Statement":[1]}
Version must be "2012-10-17" or "2008-10-17", got "2020-01-01" | {"Version":"2020-01-01","Statement":[]}
Id must be a string | {"Id":5,"Statement":[]}
unknown top-level member "Foo" | {"Statement":[],"Foo":1}
duplicate member "Statement" | {"Statement":[],"Statement":[]}
unknown statement member "Bogus" | S "Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Bogus":1
Sid must be a string, got 7 | S "Sid":7,"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"
Statement[0] (Sid "s1"): Effect must be "Allow" or "Deny", got "Maybe" | S "Sid":"s1","Effect":"Maybe","Principal":"*","Action":"*","Resource":"*"
missing Effect | S "Principal":"*","Action":"*","Resource":"*"
both Action and NotAction | S "Effect":"Allow","Principal":"*","Action":"*","NotAction":"kms:Decrypt","Resource":"*"
both Resource and NotResource | S "Effect":"Allow","Principal":"*","Action":"*","Resource":"*","NotResource":"x"
both Principal and NotPrincipal | S "Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"*","Resource":"*"
missing Action or NotAction | S "Effect":"Allow","Principal":"*","Resource":"*"
missing Resource or NotResource | S "Effect":"Allow","Principal":"*","Action":"*"
missing Principal or NotPrincipal | S "Effect":"Allow","Action":"*","Resource":"*"
Principal is not allowed in an identity policy | I "Effect":"Allow","Principal":"*","Action":"*","Resource":"*"
NotPrincipal is not allowed in an identity policy | I "Effect":"Allow","NotPrincipal":{"AWS":"*"},"Action":"*","Resource":"*"
Action must not be an empty array | S "Effect":"Allow","Principal":"*","Action":[],"Resource":"*"
invalid action "Encrypt" | S "Effect":"Allow","Principal":"*","Action":"Encrypt","Resource":"*"
invalid action "kms:" | I "Effect":"Allow","Action":"kms:","Resource":"*"
Action must contain only strings, got 3 | S "Effect":"Allow","Principal":"*","Action":["kms:Encrypt",3],"Resource":"*"
Resource must not contain an empty string | S "Effect":"Allow","Principal":"*","Action":"*","Resource":""
Principal.AWS has invalid principal "bob" | S "Effect":"Allow","Principal":{"AWS":"bob"},"Action":"*","Resource":"*"
invalid principal "arn:aws:iam::111122223333:user/*" | S "Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/*"},"Action":"*","Resource":"*"
Principal.AWS must not be an empty array | S "Effect":"Allow","Principal":{"AWS":[]},"Action":"*","Resource":"*"
unknown principal type "Group" | S "Effect":"Allow","Principal":{"Group":"x"},"Action":"*","Resource":"*"
must name at least one principal | S "Effect":"Allow","Principal":{},"Action":"*","Resource":"*"
Principal must be "*" or an object | S "Effect":"Allow","Principal":"arn:aws:iam::111122223333:root","Action":"*","Resource":"*"
unknown condition operator "StringEqualz" | C {"StringEqualz":{"kms:CallerAccount":"1"}}
unknown condition key "kms:Bogus" | C {"StringEquals":{"kms:Bogus":"1"}}
unknown condition key "kms:EncryptionContext:" | C {"StringEquals":{"kms:EncryptionContext:":"1"}}
Condition.NumericLessThan.kms:RotationPeriodInDays: "abc" is not a number | C {"NumericLessThan":{"kms:RotationPeriodInDays":"abc"}}
"1e999" is not a number | C {"NumericLessThan":{"kms:RotationPeriodInDays":"1e999"}}
"10.0.0.0/33" is not an IP address or CIDR block | C {"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}
"10.0.0/8" is not an IP address | C {"NotIpAddress":{"aws:SourceIp":"10.0.0/8"}}
"yesterday" is not a date | C {"DateLessThan":{"aws:CurrentTime":"yesterday"}}
"yes" is not a boolean | C {"Bool":{"aws:SecureTransport":"yes"}}
"1" is not a boolean | C {"Null":{"aws:SecureTransport":1}}
Null cannot take IfExists | C {"NullIfExists":{"aws:SecureTransport":"true"}}
Null cannot | C {"ForAnyValue:Null":{"aws:SecureTransport":"true"}}
"BinaryEquals" is not supported | C {"BinaryEquals":{"aws:SecureTransport":"AA=="}}
value must be a string, boolean, number or non-empty array of those, got null | C {"StringEquals":{"kms:CallerAccount":null}}
value must be | C {"StringEquals":{"kms:CallerAccount":[]}}
got object | C {"StringEquals":{"kms:CallerAccount":{"a":"b"}}}
Condition.StringEquals must be a non-empty object | C {"StringEquals":"x"}
Condition must be an object | C []
"#;

#[test]
fn malformed() {
    let allow_all = r#""Effect":"Allow","Principal":"*","Action":"*","Resource":"*""#;
    for line in MALFORMED_CASES.lines().filter(|l| !l.is_empty()) {
        let (needle, doc) = line.split_once(" | ").expect("case has |");
        let wrap =
            |members: &str| format!(r#"{{"Version":"2012-10-17","Statement":[{{{members}}}]}}"#);
        let (doc, kind) = match doc.split_at(2) {
            ("S ", m) => (wrap(m), PolicyKind::Key),
            ("I ", m) => (wrap(m), PolicyKind::Identity),
            ("C ", c) => (
                wrap(&format!(r#"{allow_all},"Condition":{c}"#)),
                PolicyKind::Key,
            ),
            _ => (doc.to_owned(), PolicyKind::Key),
        };
        match Policy::parse(&doc, kind) {
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(needle), "{msg:?} lacks {needle:?}")
            }
            Ok(_) => panic!("accepted: {doc}"),
        }
    }
}

/// Odd inputs, one per line (the empty and whitespace-only inputs are added in the test).
const GARBAGE: &str = r#"
null
true
-1
1e400
"Statement"
{}
{"Statement":null}
{"Statement":{}}
{"Statement":[{}]}
{"Statement":[null,1,"x",[]]}
{"Statement":{"Effect":true}}
{"Statement":{"Action":{}}}
{"Statement":{"Principal":[]}}
{"Statement":{"Principal":{"AWS":[[]]}}}
{"Statement":{"Condition":{"":{}}}}
{"Statement":{"Condition":{"ForAnyValue:":{"a":1}}}}
{"Statement":{"Condition":{"IfExists":{"a":1}}}}
{"Version":123456789012345678901234567890,"Statement":[]}
{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{"NumericEquals":{"kms:RotationPeriodInDays":1e308}}}}
{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{"NumericEquals":{"kms:RotationPeriodInDays":-123456789012345678901234567890}}}}
{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{"DateEquals":{"aws:CurrentTime":"99999-01-01"}}}}
{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{"DateEquals":{"aws:CurrentTime":[1e300,-1e14,"-0"]}}}}
{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["::/0","0.0.0.0/0","::1/128","1.2.3.4/008"]}}}}
{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"1.2.3.4/"}}}}
{"Statement":{"Sid":"🔑","Effect":"Allow","Principal":"*","Action":"kms:Ëncrypt","Resource":"*"}}
{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"ключ*?","Condition":{"StringLike":{"kms:EncryptionContext:ключ":"знач?*"}}}}
{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:"},"Action":"*","Resource":"*"}}
{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:sts::111122223333:assumed-role//"},"Action":"*","Resource":"*"}}
{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:"},"Action":"*","Resource":"*"}}
{"Statement":{"Effect":"Allow","Principal":"*","Action":":","Resource":"*"}}
{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:**?**","Resource":"****"}}
{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{"ArnLike":{"aws:PrincipalArn":":::::::::::*"}}}}
{"Statement":{"Sid":"\u0000\ud800"}}
{"Statement":{"Sid":"\u0000"}}
{"a":1,,}
{"Statement":[{"Effect":"Allow"}]
{"Statement":[]} trailing
"#;

#[test]
fn garbage_never_panics() {
    let deep_condition = format!(
        r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{{"StringEquals":{{"kms:CallerAccount":{}1{}}}}}}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let generated = [
        String::new(),
        " \n\t".to_owned(),
        "\u{feff}{}".to_owned(),
        "[".repeat(5000),
        "{\"a\":".repeat(5000),
        deep_condition.clone(),
        format!(r#"{{"Statement":{{"Sid":"{}"}}}}"#, "x".repeat(100_000)),
        format!(r#"{{"{}":1}}"#, "é".repeat(50_000)),
        deep_condition.replace("kms:CallerAccount", &"k".repeat(100_000)),
    ];
    let docs: Vec<String> = GARBAGE
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .chain(generated)
        .collect();
    assert!(docs.len() >= 40);
    let mut ctx = ctx(&[
        ("aws:SourceIp", &["::1"]),
        ("kms:EncryptionContext:ключ", &["значение"]),
    ]);
    ctx.set("aws:PrincipalArn", "::::::");
    ctx.set("aws:CurrentTime", "not a time");
    ctx.set("kms:RotationPeriodInDays", "NaN");
    for doc in &docs {
        for kind in [PolicyKind::Key, PolicyKind::Identity] {
            match Policy::parse(doc, kind) {
                Ok(p) => {
                    for action in ["kms:Encrypt", "", "ключ"] {
                        let _ = run(&p, "", action, "ключ", &ctx);
                    }
                }
                Err(e) => assert!(e.to_string().len() < 500, "{e}"),
            }
        }
    }
    // The well-formed unicode statement parses and evaluates.
    let unicode = docs.iter().find(|d| d.contains("знач?*"));
    let p = key_policy(unicode.map_or("", String::as_str));
    assert!(run(&p, "x", "kms:Encrypt", "ключ-1", &ctx).allow_direct);
}
