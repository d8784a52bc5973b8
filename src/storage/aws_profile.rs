//! Named AWS profiles for `s3://` bundles: `AWS_PROFILE=x ferry verify s3://…` with the keys
//! only in `~/.aws/credentials`. The credentials file is read by the `aws-creds` crate (the
//! credential loader of the `rust-s3` project), the config file's `region` and
//! `endpoint_url` by `rust-ini`; ferry parses neither itself.
//!
//! Precedence follows the AWS SDKs: keys in the environment (`AWS_ACCESS_KEY_ID`) win over a
//! profile; `AWS_REGION`/`AWS_DEFAULT_REGION` and `AWS_ENDPOINT_URL` win over the profile's
//! `region` and `endpoint_url`. Without `AWS_PROFILE` the `default` profile is used when the
//! credentials file has one (and nothing else supplies keys); with `AWS_PROFILE` a profile
//! that is missing, or that holds no static keys (SSO, `role_arn`, `credential_process`), is
//! an error naming it. `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE` move the files.

use std::path::PathBuf;

use object_store::aws::AmazonS3Builder;

use crate::{Error, Result};

fn set(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn aws_file(env: &str, name: &str) -> Option<PathBuf> {
    set(env)
        .map(PathBuf::from)
        .or_else(|| std::env::home_dir().map(|h| h.join(".aws").join(name)))
}

/// The profile's credentials, region and endpoint applied to `builder` where the
/// environment does not set them.
pub fn apply(builder: AmazonS3Builder) -> Result<AmazonS3Builder> {
    let explicit = set("AWS_PROFILE").or_else(|| set("AWS_DEFAULT_PROFILE"));
    if set("AWS_ACCESS_KEY_ID").is_some() {
        // Keys in the environment win, as in the AWS SDKs.
        return Ok(builder);
    }
    if explicit.is_none()
        && [
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ]
        .iter()
        .any(|v| set(v).is_some())
    {
        return Ok(builder);
    }
    let name = explicit.clone().unwrap_or_else(|| "default".to_string());
    let creds_file = aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let shown = creds_file.as_ref().map_or_else(
        || "~/.aws/credentials".to_string(),
        |p| p.display().to_string(),
    );
    let mut b = builder;
    let loaded = match &creds_file {
        Some(path) if path.is_file() => Some(awscreds::Credentials::from_credentials_file(
            path,
            Some(&name),
        )),
        _ => None,
    };
    match loaded {
        Some(Ok(c)) => {
            if let (Some(id), Some(secret)) = (c.access_key, c.secret_key) {
                b = b.with_access_key_id(id).with_secret_access_key(secret);
                if let Some(token) = c.session_token.or(c.security_token) {
                    b = b.with_token(token);
                }
            }
        }
        Some(Err(e)) if explicit.is_some() => {
            let why = match e {
                awscreds::error::CredentialsError::ConfigNotFound => {
                    format!("{shown} has no profile [{name}]")
                }
                awscreds::error::CredentialsError::ConfigMissingAccessKeyId
                | awscreds::error::CredentialsError::ConfigMissingSecretKey => format!(
                    "profile [{name}] in {shown} has no aws_access_key_id and \
                     aws_secret_access_key (ferry reads a profile's static keys only, not SSO, \
                     role_arn or credential_process)"
                ),
                other => format!("cannot read {shown}: {other}"),
            };
            return Err(profile_error(&name, &why));
        }
        None if explicit.is_some() => {
            return Err(profile_error(&name, &format!("{shown} does not exist")));
        }
        // No profile asked for, and no usable default one: object_store's own chain
        // (instance metadata…) applies.
        _ => return Ok(b),
    }
    if let Some(config) = aws_file("AWS_CONFIG_FILE", "config").filter(|p| p.is_file())
        && let Ok(ini) = ini::Ini::load_from_file(&config)
    {
        let section = if name == "default" {
            "default".to_string()
        } else {
            format!("profile {name}")
        };
        if let Some(s) = ini.section(Some(section.as_str())) {
            if set("AWS_REGION").is_none()
                && set("AWS_DEFAULT_REGION").is_none()
                && let Some(region) = s.get("region")
            {
                b = b.with_region(region.trim());
            }
            if set("AWS_ENDPOINT_URL").is_none()
                && set("AWS_ENDPOINT_URL_S3").is_none()
                && set("AWS_ENDPOINT").is_none()
                && let Some(endpoint) = s.get("endpoint_url")
            {
                b = b.with_endpoint(endpoint.trim());
            }
        }
    }
    Ok(b)
}

fn profile_error(name: &str, why: &str) -> Error {
    Error::Usage(format!(
        "AWS profile {name:?} (AWS_PROFILE): {why}; add the profile with `aws configure \
         --profile {name}`, choose another AWS_PROFILE, or export the keys \
         (eval \"$(aws configure export-credentials --profile {name} --format env)\")"
    ))
}
