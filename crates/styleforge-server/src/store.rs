//! The blob store: images and results addressed by the sha256 of their bytes, through the
//! `object_store` crate (a local directory here; S3 and the like are a matter of configuration).
//!
//! Writes are atomic (the local store writes a temporary file and renames it), so a reader never
//! sees half a blob; identical content is stored once.

use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

/// Content-addressed blobs plus a cache area for derived files (thumbnails).
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
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
        })
    }

    /// A store over any `object_store` backend.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
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
