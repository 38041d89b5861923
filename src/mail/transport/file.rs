//! The embedded default: each message becomes `<outbox_dir>/<message id>.eml`, readable by any
//! mail client. Written to a temporary file and renamed, so a reader never sees half a message;
//! a retry of the same message (same Message-ID) replaces the file instead of adding one.

use std::io;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

#[derive(Debug)]
pub(super) struct FileSender {
    dir: PathBuf,
}

impl FileSender {
    pub(super) fn new(dir: PathBuf) -> FileSender {
        FileSender { dir }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the message and returns where.
    pub(super) async fn write(&self, message_id: Option<&str>, raw: &[u8]) -> io::Result<PathBuf> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let name = file_name(message_id, raw);
        let path = self.dir.join(format!("{name}.eml"));
        let tmp = self.dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let written = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            file.write_all(raw).await?;
            file.sync_all().await?;
            drop(file);
            tokio::fs::rename(&tmp, &path).await
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        // Make the rename itself durable; not every platform can sync a directory.
        if let Ok(dir) = tokio::fs::File::open(&self.dir).await {
            let _ = dir.sync_all().await;
        }
        Ok(path)
    }
}

/// A file name from the Message-ID: characters outside `[A-Za-z0-9._@+=-]` become `_`, and a
/// short hash of the id is added whenever that changed anything, so two ids never share a file.
/// A message without an id is named by the hash of its content.
pub(super) fn file_name(message_id: Option<&str>, raw: &[u8]) -> String {
    let id = message_id.map(|m| m.trim().trim_start_matches('<').trim_end_matches('>')).filter(|m| !m.is_empty());
    let Some(id) = id else {
        return format!("message-{}", &hex::encode(crate::config::secrets::sha256(raw))[..16]);
    };
    let mut safe: String = id.chars().take(150).map(|c| if c.is_ascii_alphanumeric() || "._@+=-".contains(c) { c } else { '_' }).collect();
    if safe.starts_with('.') {
        // No hidden files, and no clash with the temporary files.
        safe.replace_range(..1, "_");
    }
    if safe != id {
        safe.push('-');
        safe.push_str(&hex::encode(crate::config::secrets::sha256(id.as_bytes()))[..12]);
    }
    safe
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn names_are_safe_and_distinct() {
        assert_eq!(file_name(Some("<call-12.first_call.1@host>"), b""), "call-12.first_call.1@host");
        let a = file_name(Some("a/b@host"), b"");
        let b = file_name(Some("a_b@host"), b"");
        assert!(a.starts_with("a_b@host-") && b == "a_b@host" && a != b, "{a} {b}");
        let dots = file_name(Some("../../etc/passwd"), b"");
        assert!(!dots.contains('/') && !dots.starts_with('.'), "{dots}");
        assert!(file_name(None, b"x").starts_with("message-"));
        assert_eq!(file_name(Some(&"x".repeat(400)), b"").len(), 150 + 1 + 12);
    }
}
