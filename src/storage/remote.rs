//! Object-store URLs: `s3://bucket/prefix` (also `s3a://`), `gs://bucket/prefix`,
//! `az://container/prefix` (also `azure://`, `abfs://`, `abfss://`). Credentials and
//! endpoints come from the standard environment of each service, read by `object_store`'s
//! builders (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, web identity and container credentials, and a named
//! profile's keys, region and endpoint, [`super::aws_profile`];
//! `GOOGLE_SERVICE_ACCOUNT`…; `AZURE_STORAGE_ACCOUNT_NAME`…). The store is rooted at the
//! prefix, so bundle-relative paths are the same as on a local disk.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};

use crate::{Error, Result};

/// Retries with exponential backoff on 5xx, throttling and connection errors; a request
/// gives up after `FERRY_STORE_MAX_RETRIES` retries (default 10) or
/// `FERRY_STORE_RETRY_TIMEOUT` seconds (default 180), and the export or import then fails
/// with exit 75 (an unfinished multipart upload is aborted, and no manifest is written).
fn retry() -> Result<RetryConfig> {
    let setting = |name: &str, default: u64| -> Result<u64> {
        match std::env::var(name) {
            Ok(v) => v
                .trim()
                .parse()
                .map_err(|_| Error::Usage(format!("{name}={v:?}: expected a whole number"))),
            Err(_) => Ok(default),
        }
    };
    Ok(RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: usize::try_from(setting("FERRY_STORE_MAX_RETRIES", 10)?).unwrap_or(10),
        retry_timeout: Duration::from_secs(setting("FERRY_STORE_RETRY_TIMEOUT", 180)?),
    })
}

/// The URL's scheme and the prefix under the bucket, or `None` when ferry does not know it.
fn split(url: &str) -> Option<(&str, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let prefix = rest.split_once('/').map(|(_, p)| p).unwrap_or("");
    Some((scheme, prefix.trim_matches('/').to_string()))
}

/// Opens the store a bundle URL names, rooted at its prefix.
pub fn open(url: &str) -> Result<Arc<dyn ObjectStore>> {
    let Some((scheme, prefix)) = split(url) else {
        return Err(unknown(url));
    };
    // `?` and `#` would end up inside the object keys (and in every request and error the
    // store returns): a query string is no part of a bundle location, and may hold a token.
    if url.contains(['?', '#']) {
        return Err(Error::Usage(format!(
            "bundle URL {}: an object-store location is scheme://bucket/prefix, without a query \
             string or fragment (`?`, `#`)",
            crate::redact::display_location(url)
        )));
    }
    let bad = |e: object_store::Error| {
        Error::Usage(format!(
            "bundle URL {}: {} (credentials and endpoint come from the environment: \
             AWS_*, GOOGLE_*, AZURE_* variables)",
            crate::redact::display_location(url),
            crate::redact::scrub(&e.to_string(), url)
        ))
    };
    // reqwest is built without a crypto provider of its own (no aws-lc-rs in the binary):
    // its rustls client takes the process default, ring, installed here before any client.
    crate::source::tls_provider();
    let store: Arc<dyn ObjectStore> = match scheme {
        "s3" | "s3a" => Arc::new(
            super::aws_profile::apply(AmazonS3Builder::from_env())?
                .with_url(url)
                .with_retry(retry()?)
                .build()
                .map_err(bad)?,
        ),
        "gs" => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .with_retry(retry()?)
                .build()
                .map_err(bad)?,
        ),
        "az" | "azure" | "abfs" | "abfss" => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .with_retry(retry()?)
                .build()
                .map_err(bad)?,
        ),
        _ => return Err(unknown(url)),
    };
    if prefix.is_empty() {
        return Ok(store);
    }
    let prefix = Path::parse(&prefix).map_err(|e| {
        Error::Usage(format!(
            "bundle URL {}: invalid prefix: {}",
            crate::redact::display_location(url),
            crate::redact::scrub(&e.to_string(), url)
        ))
    })?;
    Ok(Arc::new(PrefixStore::new(store, prefix)))
}

fn unknown(url: &str) -> Error {
    Error::Usage(format!(
        "bundle URL {}: not a location ferry knows (a local path, file://PATH, \
         s3://bucket/prefix, gs://bucket/prefix or az://container/prefix)",
        crate::redact::display_location(url)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_the_path_under_the_bucket() {
        assert_eq!(split("s3://b/x/y/"), Some(("s3", "x/y".to_string())));
        assert_eq!(split("s3://b"), Some(("s3", String::new())));
        assert_eq!(split("gs://b/"), Some(("gs", String::new())));
        assert_eq!(split("nope"), None);
    }

    #[test]
    fn unknown_schemes_are_usage_errors_naming_the_url() {
        let e = open("ftp://host/x").expect_err("refused");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("ftp://host/x"), "{e}");
    }
}
