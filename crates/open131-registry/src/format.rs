//! The on-disk container shared by both index files, and its errors.
//!
//! ```text
//! offset  size  field
//!      0     8  magic: b"O131PSP\0" (passports) or b"O131INN\0" (taxpayers)
//!      8     4  format version, u32 little-endian (FORMAT_VERSION)
//!     12     4  reserved, zero
//!     16     8  body length in bytes, u64 little-endian
//!     24     …  body (sections of little-endian u64 fields and word arrays)
//!    end-8     8  xxh3-64 of every byte before it (header and body)
//! ```
//!
//! Why this shape:
//!
//! * the declared body length lets a truncated file be named as such
//!   ("truncated at byte N of M") before anything else is parsed;
//! * the checksum is verified over the whole file *before* the body is
//!   interpreted, so a flipped bit is reported as a checksum mismatch rather
//!   than as some confusing structural error (xxh3 runs at memory speed: a
//!   150 MB index costs ~15 ms);
//! * loading reads the file into memory and converts words with
//!   `u64::from_le_bytes`: no `unsafe`, no alignment assumptions, and still
//!   far below a second for the full MVD list;
//! * saving writes a temporary file in the destination directory, fsyncs it,
//!   renames it over the destination and fsyncs the directory, so a crash
//!   leaves either the old or the new index, never a torn one.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::{xxh3_64, Xxh3};

/// Version of the body layout written by this build.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes before the body.
pub(crate) const HEADER_BYTES: u64 = 24;
/// Bytes of the trailing checksum.
pub(crate) const CHECKSUM_BYTES: u64 = 8;
/// Write buffer of [`save_atomic`].
const WRITE_BUFFER_BYTES: usize = 4 << 20;
/// Words converted per batch by [`BodyWriter::write_words`].
const WRITE_WORDS_PER_BATCH: usize = 8192;

/// Magic bytes of a passport index file.
pub(crate) const PASSPORT_MAGIC: [u8; 8] = *b"O131PSP\0";
/// Magic bytes of a taxpayer index file.
pub(crate) const TAXPAYER_MAGIC: [u8; 8] = *b"O131INN\0";

/// Why an index file could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum IndexFileError {
    /// Reading, writing, syncing or renaming failed.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// File concerned.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file does not start with the expected magic bytes.
    #[error("{}: not an open131 {expected} index (bad magic bytes {found:02x?})", path.display())]
    BadMagic {
        /// File concerned.
        path: PathBuf,
        /// Kind of index that was expected.
        expected: &'static str,
        /// The first bytes found (up to 8).
        found: Vec<u8>,
    },
    /// The file was written by a newer or older, incompatible build.
    #[error("{}: unsupported index format version {found} (this build reads version {supported})", path.display())]
    UnsupportedVersion {
        /// File concerned.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The file ends before the length its header declares.
    #[error("{}: truncated at byte {at}: the index should be {expected_len} bytes long", path.display())]
    Truncated {
        /// File concerned.
        path: PathBuf,
        /// Actual length of the file (the first missing byte).
        at: u64,
        /// Length the header declares (or the header length when even that is missing).
        expected_len: u64,
    },
    /// The file is longer than its header declares.
    #[error("{}: {actual_len} bytes, but the header declares {expected_len}: extra bytes at the end", path.display())]
    TrailingBytes {
        /// File concerned.
        path: PathBuf,
        /// Actual length of the file.
        actual_len: u64,
        /// Length the header declares.
        expected_len: u64,
    },
    /// The stored checksum does not match the contents.
    #[error("{}: checksum mismatch (stored {stored:#018x}, computed {computed:#018x}): the file is corrupt", path.display())]
    ChecksumMismatch {
        /// File concerned.
        path: PathBuf,
        /// Checksum stored in the file.
        stored: u64,
        /// Checksum of the contents.
        computed: u64,
    },
    /// The checksum matched but the contents are inconsistent (a bug in the writer or a forged file).
    #[error("{}: corrupt index at byte {offset}: {reason}", path.display())]
    Corrupt {
        /// File concerned.
        path: PathBuf,
        /// Byte offset of the offending section.
        offset: u64,
        /// What is inconsistent.
        reason: String,
    },
}

/// A structural problem found while parsing a body (converted into [`IndexFileError::Corrupt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CorruptBody {
    pub(crate) offset: u64,
    pub(crate) reason: String,
}

impl CorruptBody {
    pub(crate) fn new(offset: u64, reason: impl Into<String>) -> CorruptBody {
        CorruptBody { offset, reason: reason.into() }
    }
}

/// Writes body fields, hashing and counting every byte.
pub(crate) struct BodyWriter<W: Write> {
    inner: W,
    hasher: Xxh3,
    written: u64,
    scratch: Vec<u8>,
}

impl<W: Write> BodyWriter<W> {
    fn new(inner: W) -> BodyWriter<W> {
        BodyWriter { inner, hasher: Xxh3::new(), written: 0, scratch: Vec::with_capacity(WRITE_WORDS_PER_BATCH * 8) }
    }

    pub(crate) fn write_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        self.inner.write_all(bytes)
    }

    pub(crate) fn write_u32(&mut self, v: u32) -> io::Result<()> {
        self.write_bytes(&v.to_le_bytes())
    }

    pub(crate) fn write_u64(&mut self, v: u64) -> io::Result<()> {
        self.write_bytes(&v.to_le_bytes())
    }

    pub(crate) fn write_u32s(&mut self, values: &[u32]) -> io::Result<()> {
        for batch in values.chunks(WRITE_WORDS_PER_BATCH * 2) {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            for v in batch {
                scratch.extend_from_slice(&v.to_le_bytes());
            }
            let result = self.write_bytes(&scratch);
            self.scratch = scratch;
            result?;
        }
        Ok(())
    }

    pub(crate) fn write_words(&mut self, words: &[u64]) -> io::Result<()> {
        for batch in words.chunks(WRITE_WORDS_PER_BATCH) {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            for w in batch {
                scratch.extend_from_slice(&w.to_le_bytes());
            }
            let result = self.write_bytes(&scratch);
            self.scratch = scratch;
            result?;
        }
        Ok(())
    }
}

/// Reads body fields from an in-memory file, reporting absolute offsets.
pub(crate) struct BodyReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> BodyReader<'a> {
    fn new(bytes: &'a [u8], base: u64) -> BodyReader<'a> {
        BodyReader { bytes, pos: 0, base }
    }

    /// Absolute file offset of the next byte.
    pub(crate) fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn read_bytes(&mut self, n: u64) -> Result<&'a [u8], CorruptBody> {
        if n > self.remaining() as u64 {
            return Err(CorruptBody::new(
                self.offset(),
                format!("a field of {n} bytes runs past the end of the body ({} bytes left)", self.remaining()),
            ));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    pub(crate) fn read_u32(&mut self) -> Result<u32, CorruptBody> {
        let b = self.read_bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn read_u64(&mut self) -> Result<u64, CorruptBody> {
        let b = self.read_bytes(8)?;
        Ok(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }

    /// Reads `count` little-endian words (the length is checked before allocating).
    pub(crate) fn read_words(&mut self, count: u64) -> Result<Vec<u64>, CorruptBody> {
        let bytes = count
            .checked_mul(8)
            .ok_or_else(|| CorruptBody::new(self.offset(), format!("word count {count} overflows")))?;
        let raw = self.read_bytes(bytes)?;
        Ok(raw.chunks_exact(8).map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect())
    }

    /// Reads `count` little-endian `u32`s (the length is checked before allocating).
    pub(crate) fn read_u32s(&mut self, count: u64) -> Result<Vec<u32>, CorruptBody> {
        let bytes = count
            .checked_mul(4)
            .ok_or_else(|| CorruptBody::new(self.offset(), format!("value count {count} overflows")))?;
        let raw = self.read_bytes(bytes)?;
        Ok(raw.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// Fails unless the whole body was consumed.
    pub(crate) fn finish(&self) -> Result<(), CorruptBody> {
        if self.remaining() != 0 {
            return Err(CorruptBody::new(
                self.offset(),
                format!("{} unread bytes at the end of the body", self.remaining()),
            ));
        }
        Ok(())
    }
}

fn io_error<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> IndexFileError + 'a {
    move |source| IndexFileError::Io { path: path.to_path_buf(), action, source }
}

/// Writes `magic`, the header, a body of exactly `body_len` bytes produced by
/// `write_body`, and the checksum, atomically replacing `path`.
pub(crate) fn save_atomic(
    path: &Path,
    magic: [u8; 8],
    body_len: u64,
    write_body: impl FnOnce(&mut BodyWriter<BufWriter<File>>) -> io::Result<()>,
) -> Result<(), IndexFileError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "index".to_string());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = write_file(&tmp, magic, body_len, write_body);
    let result =
        result.and_then(|()| fs::rename(&tmp, path).map_err(io_error(path, "renaming the new index into place")));
    if result.is_err() {
        // Best effort: the temporary file is useless now; the original error is what matters.
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // Make the rename itself durable. Directories cannot be opened for sync on every platform.
    if let Ok(d) = File::open(&dir) {
        d.sync_all().map_err(io_error(&dir, "syncing the directory"))?;
    }
    Ok(())
}

fn write_file(
    tmp: &Path,
    magic: [u8; 8],
    body_len: u64,
    write_body: impl FnOnce(&mut BodyWriter<BufWriter<File>>) -> io::Result<()>,
) -> Result<(), IndexFileError> {
    let file = File::create(tmp).map_err(io_error(tmp, "creating the temporary index file"))?;
    let mut w = BodyWriter::new(BufWriter::with_capacity(WRITE_BUFFER_BYTES, file));
    let write = |w: &mut BodyWriter<BufWriter<File>>| -> io::Result<()> {
        w.write_bytes(&magic)?;
        w.write_u32(FORMAT_VERSION)?;
        w.write_u32(0)?;
        w.write_u64(body_len)?;
        write_body(w)?;
        if w.written != HEADER_BYTES + body_len {
            return Err(io::Error::other(format!(
                "internal error: body is {} bytes, announced {body_len}",
                w.written - HEADER_BYTES
            )));
        }
        let checksum = w.hasher.digest();
        w.inner.write_all(&checksum.to_le_bytes())?;
        w.inner.flush()
    };
    write(&mut w).map_err(io_error(tmp, "writing the index"))?;
    let file = w.inner.into_inner().map_err(|e| IndexFileError::Io {
        path: tmp.to_path_buf(),
        action: "writing the index",
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_error(tmp, "syncing the index"))
}

/// Reads and checks an index file: magic, version, length and checksum.
/// Returns the whole file; `parse_body` gets a reader over its body.
pub(crate) fn load_checked<T>(
    path: &Path,
    magic: [u8; 8],
    kind: &'static str,
    parse_body: impl FnOnce(&mut BodyReader<'_>) -> Result<T, CorruptBody>,
) -> Result<T, IndexFileError> {
    let mut file = File::open(path).map_err(io_error(path, "opening the index"))?;
    let len = file.metadata().map_err(io_error(path, "reading the index's metadata"))?.len();
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.read_to_end(&mut bytes).map_err(io_error(path, "reading the index"))?;
    let body = check_container(path, &bytes, magic, kind)?;
    let mut reader = BodyReader::new(body, HEADER_BYTES);
    let parsed = parse_body(&mut reader).and_then(|t| reader.finish().map(|()| t));
    parsed.map_err(|c| IndexFileError::Corrupt { path: path.to_path_buf(), offset: c.offset, reason: c.reason })
}

/// Validates the container around the body and returns the body.
fn check_container<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: [u8; 8],
    kind: &'static str,
) -> Result<&'a [u8], IndexFileError> {
    let actual_len = bytes.len() as u64;
    let magic_seen = &bytes[..bytes.len().min(magic.len())];
    if magic_seen != &magic[..magic_seen.len()] {
        return Err(IndexFileError::BadMagic { path: path.to_path_buf(), expected: kind, found: magic_seen.to_vec() });
    }
    if actual_len < HEADER_BYTES {
        return Err(IndexFileError::Truncated {
            path: path.to_path_buf(),
            at: actual_len,
            expected_len: HEADER_BYTES + CHECKSUM_BYTES,
        });
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != FORMAT_VERSION {
        return Err(IndexFileError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let mut body_len = [0u8; 8];
    body_len.copy_from_slice(&bytes[16..24]);
    let body_len = u64::from_le_bytes(body_len);
    let expected_len = body_len.checked_add(HEADER_BYTES + CHECKSUM_BYTES).ok_or_else(|| IndexFileError::Corrupt {
        path: path.to_path_buf(),
        offset: 16,
        reason: format!("declared body length {body_len} overflows"),
    })?;
    if actual_len < expected_len {
        return Err(IndexFileError::Truncated { path: path.to_path_buf(), at: actual_len, expected_len });
    }
    if actual_len > expected_len {
        return Err(IndexFileError::TrailingBytes { path: path.to_path_buf(), actual_len, expected_len });
    }
    let (content, stored) = bytes.split_at(bytes.len() - CHECKSUM_BYTES as usize);
    let mut s = [0u8; 8];
    s.copy_from_slice(stored);
    let stored = u64::from_le_bytes(s);
    let computed = xxh3_64(content);
    if stored != computed {
        return Err(IndexFileError::ChecksumMismatch { path: path.to_path_buf(), stored, computed });
    }
    Ok(&content[HEADER_BYTES as usize..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn save_sample(path: &Path) {
        save_atomic(path, PASSPORT_MAGIC, 8 + 16, |w| {
            w.write_u64(2)?;
            w.write_words(&[7, 9])
        })
        .unwrap();
    }

    fn load_sample(path: &Path) -> Result<Vec<u64>, IndexFileError> {
        load_checked(path, PASSPORT_MAGIC, "passport", |r| {
            let n = r.read_u64()?;
            r.read_words(n)
        })
    }

    #[test]
    fn round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.idx");
        save_sample(&path);
        assert_eq!(load_sample(&path).unwrap(), vec![7, 9]);
        let good = fs::read(&path).unwrap();
        assert_eq!(good.len() as u64, HEADER_BYTES + 24 + CHECKSUM_BYTES);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

        let mut bad = good.clone();
        bad[0] ^= 1;
        fs::write(&path, &bad).unwrap();
        assert!(matches!(load_sample(&path), Err(IndexFileError::BadMagic { .. })));

        let mut bad = good.clone();
        bad[8] = 99;
        fs::write(&path, &bad).unwrap();
        assert!(matches!(load_sample(&path), Err(IndexFileError::UnsupportedVersion { found: 99, .. })));

        fs::write(&path, &good[..good.len() - 3]).unwrap();
        let err = load_sample(&path).unwrap_err();
        assert!(matches!(err, IndexFileError::Truncated { at: 53, expected_len: 56, .. }), "{err}");
        assert!(err.to_string().contains("truncated at byte 53"), "{err}");

        fs::write(&path, &good[..5]).unwrap();
        assert!(matches!(load_sample(&path), Err(IndexFileError::Truncated { at: 5, .. })));

        let mut bad = good.clone();
        bad.push(0);
        fs::write(&path, &bad).unwrap();
        assert!(matches!(load_sample(&path), Err(IndexFileError::TrailingBytes { .. })));

        let mut bad = good.clone();
        bad[30] ^= 0x10;
        fs::write(&path, &bad).unwrap();
        let err = load_sample(&path).unwrap_err();
        assert!(matches!(err, IndexFileError::ChecksumMismatch { .. }), "{err}");
        assert!(err.to_string().contains("checksum mismatch"));

        let err = load_checked(&dir.path().join("missing"), PASSPORT_MAGIC, "passport", |_| Ok(())).unwrap_err();
        assert!(matches!(err, IndexFileError::Io { .. }));
    }

    #[test]
    fn body_must_be_consumed_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.idx");
        save_sample(&path);
        let err = load_checked(&path, PASSPORT_MAGIC, "passport", |r| r.read_u64()).unwrap_err();
        assert!(matches!(err, IndexFileError::Corrupt { offset: 32, .. }), "{err}");
        let err = load_checked(&path, PASSPORT_MAGIC, "passport", |r| r.read_words(1 << 40)).unwrap_err();
        assert!(matches!(err, IndexFileError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn announced_length_is_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.idx");
        let err = save_atomic(&path, PASSPORT_MAGIC, 16, |w| w.write_u64(1)).unwrap_err();
        assert!(err.to_string().contains("internal error"), "{err}");
        assert!(!path.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
