//! A repository held by a backup node: rustic's backend over that node's berthd, which
//! speaks the restic REST protocol (v2) under `/api/v1/backup-store/<store>/`, through
//! Berth's own client (`berth_client`: HTTPS with the node's certificate pinned, the backup
//! user's token). Transport failures and the node's 5xx answers are tried again a few
//! times; its 4xx answers (a quota, an append-only store, a bad token) are final.

use berth_client::RemoteNode;
use bytes::Bytes;
use rustic_core::{
    BytesList, ErrorKind, FileType, Id, ReadBackend, RusticError, RusticResult, WriteBackend,
};
use std::time::Duration;

/// Largest answer read at once (a pack read whole by `check --read-data`).
const MAX_READ: u64 = 1 << 32;
const TRIES: u32 = 4;

/// Where a backup node's store is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSpec {
    /// `https://HOST:PORT`.
    pub url: String,
    /// The SHA-256 of its certificate, hex.
    pub fingerprint: String,
    pub token: String,
    pub store: String,
}

impl std::fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/backup-store/{}", self.url, self.store)
    }
}

impl StoreSpec {
    /// The client of the store's node.
    pub fn node(&self) -> Result<RemoteNode, String> {
        let remote = berth_client::Remote {
            url: self.url.clone(),
            fingerprint: Some(self.fingerprint.clone()),
            token: Some(self.token.clone()),
        };
        RemoteNode::from_remote(&remote, None).map_err(|e| e.to_string())
    }
}

/// The backend of one store.
#[derive(Debug)]
pub struct StoreBackend {
    spec: StoreSpec,
    node: RemoteNodeBox,
}

/// [`RemoteNode`] is not `Debug`.
struct RemoteNodeBox(RemoteNode);

impl std::fmt::Debug for RemoteNodeBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteNode")
    }
}

fn be_err(what: &str, e: impl std::fmt::Display) -> Box<RusticError> {
    // rustic's guidance is a template: no braces from outside in it.
    let msg = format!("backup node: {what}: {e}").replace(['{', '}'], "");
    RusticError::new(ErrorKind::Backend, msg)
}

impl StoreBackend {
    pub fn new(spec: StoreSpec) -> Result<StoreBackend, String> {
        let node = spec.node()?;
        Ok(StoreBackend {
            spec,
            node: RemoteNodeBox(node),
        })
    }

    fn base(&self) -> String {
        format!("/backup-store/{}", self.spec.store)
    }

    fn path(&self, tpe: FileType, id: &Id) -> String {
        match tpe {
            FileType::Config => format!("{}/config", self.base()),
            t => format!("{}/{}/{}", self.base(), t.dirname(), id.to_hex().as_str()),
        }
    }

    /// One request, tried again after transport failures and 5xx answers; the answer
    /// of the last try (any status), or the transport's error.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        parts: &[&[u8]],
    ) -> RusticResult<berth_client::RawAnswer> {
        let mut last = None;
        for i in 0..TRIES {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(250 << i));
            }
            match self.node.0.raw(method, path, headers, parts, MAX_READ) {
                Ok(a) if a.status >= 500 => last = Some(Ok(a)),
                Ok(a) => return Ok(a),
                Err(e) => {
                    tracing::debug!(method, path, error = %e.message, "backup node: trying again");
                    last = Some(Err(e));
                }
            }
        }
        match last {
            Some(Ok(a)) => Ok(a),
            Some(Err(e)) => Err(be_err(&format!("{method} {path}"), e.message)),
            None => Err(be_err(path, "no answer")),
        }
    }

    fn ok(a: berth_client::RawAnswer, what: &str) -> RusticResult<berth_client::RawAnswer> {
        if (200..300).contains(&a.status) {
            Ok(a)
        } else {
            Err(be_err(what, a.error().message))
        }
    }

    /// Whether the store holds a repository (its config).
    pub fn has_config(&self) -> RusticResult<bool> {
        let p = format!("{}/config", self.base());
        let a = self.request("HEAD", &p, &[], &[])?;
        match a.status {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(be_err(&p, a.error().message)),
        }
    }

    /// The store as its node describes it (`GET /backup-store`: name, limits, usage).
    pub fn info(&self) -> RusticResult<berth_api::agent::StoreInfo> {
        let a = Self::ok(
            self.request("GET", "/backup-store", &[], &[])?,
            "store info",
        )?;
        serde_json::from_slice(&a.body).map_err(|e| be_err("store info", e))
    }
}

impl ReadBackend for StoreBackend {
    fn location(&self) -> String {
        format!("berth-store:{}", self.spec)
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        if tpe == FileType::Config {
            return Ok(if self.has_config()? {
                vec![(Id::default(), 0)]
            } else {
                vec![]
            });
        }
        let p = format!("{}/{}/", self.base(), tpe.dirname());
        let a = Self::ok(
            self.request(
                "GET",
                &p,
                &[("Accept", "application/vnd.x.restic.rest.v2".into())],
                &[],
            )?,
            &p,
        )?;
        #[derive(serde::Deserialize)]
        struct Entry {
            name: String,
            size: u64,
        }
        let list: Option<Vec<Entry>> =
            serde_json::from_slice(&a.body).map_err(|e| be_err(&p, e))?;
        list.unwrap_or_default()
            .into_iter()
            .map(|e| {
                let id: Id = e.name.parse().map_err(|x| be_err(&p, x))?;
                let size = u32::try_from(e.size).map_err(|x| be_err(&p, x))?;
                Ok((id, size))
            })
            .collect()
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        let p = self.path(tpe, id);
        let a = Self::ok(self.request("GET", &p, &[], &[])?, &p)?;
        Ok(Bytes::from(a.body))
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        let p = self.path(tpe, id);
        if length == 0 {
            return Ok(Bytes::new());
        }
        let end = u64::from(offset) + u64::from(length) - 1;
        let a = Self::ok(
            self.request(
                "GET",
                &p,
                &[("Range", format!("bytes={offset}-{end}"))],
                &[],
            )?,
            &p,
        )?;
        if a.body.len() != length as usize {
            return Err(be_err(
                &p,
                format!("{} bytes came of the {length} asked", a.body.len()),
            ));
        }
        Ok(Bytes::from(a.body))
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        self.path(tpe, id)
    }
}

impl WriteBackend for StoreBackend {
    fn create(&self) -> RusticResult<()> {
        let p = format!("{}/?create=true", self.base());
        Self::ok(self.request("POST", &p, &[], &[])?, &p).map(|_| ())
    }

    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        let p = self.path(tpe, id);
        let parts: Vec<&[u8]> = content.slice().iter().map(|b| b.as_ref()).collect();
        Self::ok(self.request("POST", &p, &[], &parts)?, &p).map(|_| ())
    }

    fn remove(&self, tpe: FileType, id: &Id, _cacheable: bool) -> RusticResult<()> {
        let p = self.path(tpe, id);
        let a = self.request("DELETE", &p, &[], &[])?;
        // Gone already (a retry after a lost answer): what was asked.
        if a.status == 404 {
            return Ok(());
        }
        Self::ok(a, &p).map(|_| ())
    }
}
