//! `kms-bridge admin …`: manage principals, access keys and identity policies directly in the
//! store and token (the server may be running; it sees changes within `CACHE_TTL`).

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::auth::principals::PrincipalError;
use crate::auth::Principals;
use crate::config::Settings;
use crate::store::PrincipalKind;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an IAM-style user: arn:aws:iam::<account>:user/<name>.
    CreateUser {
        #[arg(long)]
        name: String,
        /// Defaults to the configured account_id.
        #[arg(long)]
        account: Option<String>,
    },
    /// Create an IAM-style role: arn:aws:iam::<account>:role/<name>.
    CreateRole {
        #[arg(long)]
        name: String,
        #[arg(long)]
        account: Option<String>,
    },
    /// Create the account root principal: arn:aws:iam::<account>:root.
    CreateRoot {
        #[arg(long)]
        account: Option<String>,
    },
    /// Create an access key; prints AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY lines once.
    CreateAccessKey {
        #[arg(long)]
        principal: String,
        /// Import this key id (with the secret from --secret-file) instead of generating one.
        #[arg(long, requires = "secret_file")]
        access_key_id: Option<String>,
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
    DeleteAccessKey {
        #[arg(long)]
        access_key_id: String,
    },
    /// Attach (or replace) a named identity policy; --document is a file or '-' for stdin.
    PutIdentityPolicy {
        #[arg(long)]
        principal: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        document: String,
    },
    DeleteIdentityPolicy {
        #[arg(long)]
        principal: String,
        #[arg(long)]
        name: String,
    },
    ListPrincipals,
    /// List the token's key objects that no key refers to (orphans); --destroy destroys them.
    /// Only the default token; make sure no database restore is pending first: an orphan may
    /// be the only remains of a key whose metadata was lost.
    Orphans {
        #[arg(long)]
        destroy: bool,
    },
}

pub async fn run(settings: Settings, cmd: AdminCommand) -> anyhow::Result<()> {
    let backends = crate::open_backends(&settings).await?;
    if let AdminCommand::Orphans { destroy } = cmd {
        let kms = crate::kms::Kms::new(
            backends.token,
            backends.store,
            std::sync::Arc::new(crate::kms::SystemClock),
            settings.quotas.clone(),
            settings.token.module.clone(),
        );
        let found = kms.orphan_objects(destroy).await?;
        for o in &found {
            println!("{}\t{}", hex::encode(&o.id), o.label);
        }
        let verb = if destroy { "destroyed" } else { "found" };
        eprintln!("{} orphan token object(s) {verb}", found.len());
        return Ok(());
    }
    let principals = Principals::open(backends.token, backends.store)
        .await
        .context("opening the credential store")?;
    let account = |a: Option<String>| a.unwrap_or_else(|| settings.account_id.clone());
    let result = match cmd {
        AdminCommand::CreateUser { name, account: a } => principals
            .create_principal(PrincipalKind::User, &account(a), &name)
            .await
            .map(|p| println!("{}", p.arn)),
        AdminCommand::CreateRole { name, account: a } => principals
            .create_principal(PrincipalKind::Role, &account(a), &name)
            .await
            .map(|p| println!("{}", p.arn)),
        AdminCommand::CreateRoot { account: a } => principals
            .create_principal(PrincipalKind::Root, &account(a), "root")
            .await
            .map(|p| println!("{}", p.arn)),
        AdminCommand::CreateAccessKey {
            principal,
            access_key_id,
            secret_file,
        } => {
            let import = match (access_key_id, secret_file) {
                (Some(id), Some(f)) => {
                    let mut s = zeroize::Zeroizing::new(
                        std::fs::read_to_string(&f)
                            .with_context(|| format!("reading {}", f.display()))?,
                    );
                    let n = s.trim_end().len();
                    s.truncate(n);
                    Some((id, s))
                }
                _ => None,
            };
            principals
                .create_access_key(&principal, import)
                .await
                .map(|(id, secret)| {
                    println!("AWS_ACCESS_KEY_ID={id}");
                    println!("AWS_SECRET_ACCESS_KEY={}", secret.as_str());
                })
        }
        AdminCommand::DeleteAccessKey { access_key_id } => {
            principals.delete_access_key(&access_key_id).await
        }
        AdminCommand::PutIdentityPolicy {
            principal,
            name,
            document,
        } => {
            let doc = if document == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                std::fs::read_to_string(&document).with_context(|| format!("reading {document}"))?
            };
            principals
                .put_identity_policy(&principal, &name, &doc)
                .await
        }
        AdminCommand::DeleteIdentityPolicy { principal, name } => {
            principals.delete_identity_policy(&principal, &name).await
        }
        // Answered above, before the credential store is opened.
        AdminCommand::Orphans { .. } => Ok(()),
        AdminCommand::ListPrincipals => principals.list().await.map(|list| {
            for p in list {
                println!("{}\t{}", p.arn, p.kind.as_str());
            }
        }),
    };
    match result {
        Ok(()) => Ok(()),
        Err(PrincipalError::Invalid(m)) => bail!("invalid request: {m}"),
        Err(e) => Err(e.into()),
    }
}
