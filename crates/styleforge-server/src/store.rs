//! The blob store: images and results addressed by the sha256 of their bytes, through the
//! `object_store` crate: a local directory by default, or an S3-compatible bucket
//! (`s3://BUCKET/PREFIX`, endpoint and credentials from the `AWS_*` variables) shared by API
//! servers and workers on several machines.
//!
//! Writes are atomic (the local store writes a temporary file and renames it), so a reader never
//! sees half a blob; identical content is stored once.
//!
//! Blobs and the database rows that reference them are written in an order that never loses
//! track of a blob: an intent row first (see [`crate::db::blobs`]), then the blob, then the row
//! that references it, then the intent is cleared ([`put_image`]); a blob is deleted once no row
//! references it ([`release_blob`]).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use crate::db::{self, Db, ImageRow};

/// Content-addressed blobs plus a cache area for derived files (thumbnails).
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// The S3 client and key prefix when the store is S3 (for presigned URLs).
    s3: Option<(Arc<object_store::aws::AmazonS3>, String)>,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blobs({})", self.store)
    }
}

/// sha256 of bytes, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn blob_path(sha: &str) -> StorePath {
    let prefix = sha.get(..2).unwrap_or("00");
    StorePath::from(format!("sha256/{prefix}/{sha}"))
}

fn cache_path(key: &str) -> StorePath {
    StorePath::from(format!("cache/{key}"))
}

impl Blobs {
    /// A store in a local directory (created when missing).
    pub fn local(dir: &std::path::Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        let fs = LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(false);
        Ok(Self {
            store: Arc::new(fs),
            s3: None,
        })
    }

    /// The store a configuration names: `storage_url` (`s3://BUCKET/PREFIX` or `file://DIR`),
    /// else the local `blob_dir`.
    pub fn open(config: &crate::Config) -> anyhow::Result<Self> {
        match config.storage_url.as_deref() {
            None => Self::local(&config.blob_dir()),
            Some(url) => Self::from_url(url, &[]),
        }
    }

    /// A store from a URL: `file://DIR`, or `s3://BUCKET/PREFIX` configured from the `AWS_*`
    /// environment variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_REGION`, `AWS_ALLOW_HTTP`, ...) and then from `options` (object_store's S3 keys,
    /// such as `aws_endpoint`), which take precedence.
    pub fn from_url(url: &str, options: &[(&str, &str)]) -> anyhow::Result<Self> {
        if let Some(dir) = url.strip_prefix("file://") {
            return Self::local(std::path::Path::new(dir));
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            anyhow::bail!("unsupported storage URL `{url}` (use s3://BUCKET/PREFIX or file://DIR)");
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        anyhow::ensure!(!bucket.is_empty(), "storage URL `{url}` names no bucket");
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (k, v) in options {
            let key: AmazonS3ConfigKey = k
                .parse()
                .map_err(|e| anyhow::anyhow!("S3 option `{k}`: {e}"))?;
            b = b.with_config(key, *v);
        }
        let s3 = b
            .build()
            .map_err(|e| anyhow::anyhow!("S3 store {url}: {e}"))?;
        let prefix = prefix.trim_matches('/');
        let s3 = Arc::new(s3);
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            s3.clone()
        } else {
            Arc::new(PrefixStore::new(s3.clone(), prefix))
        };
        Ok(Self { store, s3: Some((s3, prefix.to_string())) })
    }

    /// The hashes of every stored blob (not the cache).
    pub async fn list_blobs(&self) -> object_store::Result<Vec<String>> {
        let prefix = StorePath::from("sha256");
        let metas: Vec<object_store::ObjectMeta> =
            self.store.list(Some(&prefix)).try_collect().await?;
        let mut shas: Vec<String> = metas
            .into_iter()
            .filter_map(|m| m.location.filename().map(str::to_string))
            .collect();
        shas.sort();
        Ok(shas)
    }

    /// A store over any `object_store` backend.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store, s3: None }
    }

    /// A presigned S3 `GET` URL of a blob, valid for `expires_in` (AWS SigV4 query
    /// parameters; the bucket answers it without the service). `None` when the store is not S3.
    pub async fn presigned_get(
        &self,
        sha: &str,
        expires_in: std::time::Duration,
    ) -> Option<object_store::Result<String>> {
        use object_store::signer::Signer;
        let (s3, prefix) = self.s3.as_ref()?;
        let path = blob_path(sha);
        let full = if prefix.is_empty() {
            path
        } else {
            StorePath::from(format!("{prefix}/{path}"))
        };
        Some(
            s3.signed_url(axum::http::Method::GET, &full, expires_in)
                .await
                .map(|u| u.to_string()),
        )
    }

    /// Stores bytes under their sha256 (once) and returns the hash.
    pub async fn put(&self, bytes: Bytes) -> object_store::Result<String> {
        let sha = sha256_hex(&bytes);
        let path = blob_path(&sha);
        if self.store.head(&path).await.is_err() {
            self.store.put(&path, PutPayload::from(bytes)).await?;
        }
        Ok(sha)
    }

    /// Makes sure a blob exists (after a row that references it was written), restoring it
    /// from `bytes` when a concurrent delete removed it.
    pub async fn ensure(&self, sha: &str, bytes: Bytes) -> object_store::Result<()> {
        let path = blob_path(sha);
        if self.store.head(&path).await.is_err() {
            self.store.put(&path, PutPayload::from(bytes)).await?;
        }
        Ok(())
    }

    /// The bytes of a blob.
    pub async fn get(&self, sha: &str) -> object_store::Result<Bytes> {
        self.store.get(&blob_path(sha)).await?.bytes().await
    }

    /// Removes a blob (missing is fine).
    pub async fn delete(&self, sha: &str) -> object_store::Result<()> {
        match self.store.delete(&blob_path(sha)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A derived file from the cache, if present.
    pub async fn cached(&self, key: &str) -> Option<Bytes> {
        match self.store.get(&cache_path(key)).await {
            Ok(r) => r.bytes().await.ok(),
            Err(_) => None,
        }
    }

    /// Stores a derived file in the cache.
    pub async fn put_cached(&self, key: &str, bytes: Bytes) -> object_store::Result<()> {
        self.store
            .put(&cache_path(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
    }

    /// Checks that the store answers (readiness).
    pub async fn check(&self) -> object_store::Result<()> {
        let path = StorePath::from("cache/.ready");
        self.store
            .put(&path, PutPayload::from(Bytes::from_static(b"ok")))
            .await?;
        Ok(())
    }
}

/// Stores an image's bytes in the blob store and records its row, with a blob intent (token: the
/// image id) covering the time between the two. `row.sha256` must be the bytes' hash.
///
/// Database and blob store errors are returned as `E`; failing to clear the intent is only logged
/// (the orphan sweep will find the blob referenced and keep it).
pub async fn put_image<E>(db: &Db, blobs: &Blobs, bytes: &Bytes, row: &ImageRow) -> Result<(), E>
where
    E: From<sqlx::Error> + From<object_store::Error>,
{
    let sha = row.sha256.as_str();
    db::add_blob_intent(db, sha, &row.id).await?;
    blobs.put(bytes.clone()).await?;
    db::insert_image(db, row).await?;
    if let Err(e) = db::clear_blob_intent(db, sha, &row.id).await {
        tracing::warn!(sha, error = %e, "clearing a blob intent");
    }
    // A concurrent delete of identical content may have removed the blob meanwhile.
    blobs.ensure(sha, bytes.clone()).await?;
    Ok(())
}

/// Deletes a blob when no row references it any more. Failures are logged, not returned: the
/// blob then stays behind, unreferenced.
pub async fn release_blob(db: &Db, blobs: &Blobs, sha: &str) {
    match db::blob_refs(db, sha).await {
        Ok(0) => {
            if let Err(e) = blobs.delete(sha).await {
                tracing::warn!(sha, error = %e, "could not delete blob");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(sha, error = %e, "could not count blob references"),
    }
}
