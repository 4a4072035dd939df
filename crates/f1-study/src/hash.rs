//! sha256 as lowercase hex, of bytes, of files (streamed, so a 500 MB weight file is not read
//! into memory), of folders (the sorted list of relative paths and file hashes) and of a
//! sequence of length-prefixed fields: the one digest the study records for inputs, outputs,
//! downloads and cache keys.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Lowercase hex of a digest.
fn hex(digest: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(digest.len() * 2);
    for b in digest {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// sha256 of a file's contents, lowercase hex, read in 1 MiB pieces.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// sha256 of a file, or of a folder as the sorted lines `<relative path>\0<file sha256>\n`
/// (files whose name ends in `.tmp` are an interrupted write's leftovers and left out), or
/// `absent` for a path that does not exist, so that its appearance later changes the hash.
/// Symbolic links are followed; a link back to a folder being hashed (a loop) is an error.
pub fn sha256_tree(path: &Path) -> Result<String> {
    if path.is_file() {
        return sha256_file(path);
    }
    if !path.is_dir() {
        return Ok("absent".into());
    }
    let mut files = vec![];
    collect(path, path, &mut files, &mut vec![])?;
    files.sort();
    let mut h = Sha256::new();
    for (rel, abs) in files {
        h.update(rel.as_bytes());
        h.update([0]);
        h.update(sha256_file(&abs)?.as_bytes());
        h.update([b'\n']);
    }
    Ok(hex(&h.finalize()))
}

/// Files under `dir`; `ancestors` are the real paths of the folders being walked, to stop a loop.
fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>, ancestors: &mut Vec<PathBuf>) -> Result<()> {
    let real = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    if ancestors.contains(&real) {
        return Err(Error::io(dir, std::io::Error::other("a symbolic link loops back to a folder that contains it; remove the link")));
    }
    ancestors.push(real);
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = entry.map_err(|e| Error::io(dir, e))?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.ends_with(".tmp") {
            continue;
        }
        if p.is_dir() {
            collect(root, &p, out, ancestors)?;
        } else {
            out.push((p.strip_prefix(root).unwrap_or(&p).to_string_lossy().into_owned(), p));
        }
    }
    ancestors.pop();
    Ok(())
}

/// sha256 over a sequence of fields, each prefixed with its length (u64, little-endian), so
/// that no two different sequences hash the same bytes ("ab","c" vs "a","bc").
#[derive(Default)]
pub struct Fields(Sha256);

impl Fields {
    /// An empty sequence.
    pub fn new() -> Self {
        Fields(Sha256::new())
    }

    /// Append one field.
    pub fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    /// The digest, lowercase hex.
    pub fn hex(self) -> String {
        hex(&self.0.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() -> Result<()> {
        // FIPS 180-2's "abc" example and the empty string.
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").map_err(|e| Error::io(&path, e))?;
        assert_eq!(sha256_file(&path)?, sha256_hex(b"abc"));
        Ok(())
    }

    #[test]
    fn a_folder_hash_follows_names_and_contents_but_not_temporaries() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let root = dir.path().join("tree");
        assert_eq!(sha256_tree(&root)?, "absent");
        std::fs::create_dir_all(root.join("sub")).map_err(|e| Error::io(&root, e))?;
        std::fs::write(root.join("sub/a.txt"), b"abc").map_err(|e| Error::io(&root, e))?;
        let expected = sha256_hex(format!("sub/a.txt\0{}\n", sha256_hex(b"abc")).as_bytes());
        assert_eq!(sha256_tree(&root)?, expected);
        std::fs::write(root.join("sub/.a.txt.1.0.tmp"), b"half").map_err(|e| Error::io(&root, e))?;
        assert_eq!(sha256_tree(&root)?, expected);
        std::fs::write(root.join("sub/a.txt"), b"abd").map_err(|e| Error::io(&root, e))?;
        assert_ne!(sha256_tree(&root)?, expected);
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn a_link_loop_is_an_error_not_a_hang() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let root = dir.path().join("tree");
        std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        std::os::unix::fs::symlink(&root, root.join("loop")).map_err(|e| Error::io(&root, e))?;
        assert!(sha256_tree(&root).is_err());
        Ok(())
    }

    #[test]
    fn length_prefixes_keep_field_boundaries() {
        let mut a = Fields::new();
        a.field(b"ab").field(b"c");
        let mut b = Fields::new();
        b.field(b"a").field(b"bc");
        assert_ne!(a.hex(), b.hex());
    }
}
