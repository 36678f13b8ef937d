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
//! * loading streams the body through the hasher and the decoder in 1 MiB
//!   steps, so the index is the only large allocation (no file-sized buffer
//!   beside it); the checksum is compared at the end, and a body that fails to
//!   decode is still hashed to the end, so a flipped bit is reported as a
//!   checksum mismatch rather than as some confusing structural error. Every
//!   decoded structure is validated as well, so nothing unchecked is ever used;
//! * words are converted with `u64::from_le_bytes`: no `unsafe`, no alignment
//!   assumptions, and still far below a second for the full MVD list;
//! * saving writes a temporary file in the destination directory, fsyncs it,
//!   renames it over the destination and fsyncs the directory, so a crash
//!   leaves either the old or the new index, never a torn one.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::Xxh3;

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

/// Bytes read from the file per step while decoding large arrays.
const LOAD_CHUNK_BYTES: usize = 1 << 20;

/// Reads body fields straight from the file, hashing every byte on the way,
/// and reports absolute offsets. Streaming keeps the load's peak memory at the
/// index itself: no file-sized buffer is ever held next to the decoded arrays.
pub(crate) struct BodyReader<'a> {
    inner: &'a mut dyn Read,
    hasher: &'a mut Xxh3,
    pos: u64,
    len: u64,
    base: u64,
}

impl BodyReader<'_> {
    /// Absolute file offset of the next byte.
    pub(crate) fn offset(&self) -> u64 {
        self.base + self.pos
    }

    fn remaining(&self) -> u64 {
        self.len - self.pos
    }

    /// Checks that `n` more bytes exist in the body (before anything is allocated for them).
    fn check_room(&self, n: u64) -> Result<(), CorruptBody> {
        if n > self.remaining() {
            return Err(CorruptBody::new(
                self.offset(),
                format!("a field of {n} bytes runs past the end of the body ({} bytes left)", self.remaining()),
            ));
        }
        Ok(())
    }

    /// Fills `buf` from the file and hashes it.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), CorruptBody> {
        self.inner
            .read_exact(buf)
            .map_err(|e| CorruptBody::new(self.offset(), format!("reading the index failed: {e}")))?;
        self.hasher.update(buf);
        self.pos += buf.len() as u64;
        Ok(())
    }

    pub(crate) fn read_bytes(&mut self, n: u64) -> Result<Vec<u8>, CorruptBody> {
        self.check_room(n)?;
        let mut out = vec![0u8; usize::try_from(n).map_err(|_| CorruptBody::new(self.offset(), "field too large"))?];
        self.fill(&mut out)?;
        Ok(out)
    }

    pub(crate) fn read_u32(&mut self) -> Result<u32, CorruptBody> {
        self.check_room(4)?;
        let mut b = [0u8; 4];
        self.fill(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    pub(crate) fn read_u64(&mut self) -> Result<u64, CorruptBody> {
        self.check_room(8)?;
        let mut b = [0u8; 8];
        self.fill(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads `count` little-endian values of `W` bytes each, a chunk at a time
    /// (the length is checked before allocating).
    fn read_values<T, const W: usize>(
        &mut self,
        count: u64,
        spare: usize,
        decode: fn([u8; W]) -> T,
    ) -> Result<Vec<T>, CorruptBody> {
        let bytes = count
            .checked_mul(W as u64)
            .ok_or_else(|| CorruptBody::new(self.offset(), format!("value count {count} overflows")))?;
        self.check_room(bytes)?;
        let count = usize::try_from(count).map_err(|_| CorruptBody::new(self.offset(), "too many values"))?;
        // `spare` is reserved now so a caller's padding never reallocates (and
        // never briefly doubles) a large array.
        let mut out = Vec::with_capacity(count.saturating_add(spare));
        let mut chunk = vec![0u8; LOAD_CHUNK_BYTES.min(count * W).max(W)];
        let mut left = count;
        while left > 0 {
            let take = left.min(chunk.len() / W);
            let buf = &mut chunk[..take * W];
            self.fill(buf)?;
            out.extend(buf.chunks_exact(W).map(|c| {
                let mut a = [0u8; W];
                a.copy_from_slice(c);
                decode(a)
            }));
            left -= take;
        }
        Ok(out)
    }

    /// Reads `count` little-endian words (the length is checked before allocating).
    pub(crate) fn read_words(&mut self, count: u64) -> Result<Vec<u64>, CorruptBody> {
        self.read_values::<u64, 8>(count, 0, u64::from_le_bytes)
    }

    /// [`BodyReader::read_words`] followed by `padding` zero words, allocated once.
    pub(crate) fn read_words_padded(&mut self, count: u64, padding: usize) -> Result<Vec<u64>, CorruptBody> {
        let mut words = self.read_values::<u64, 8>(count, padding, u64::from_le_bytes)?;
        words.resize(words.len() + padding, 0);
        Ok(words)
    }

    /// Reads `count` little-endian `u32`s (the length is checked before allocating).
    pub(crate) fn read_u32s(&mut self, count: u64) -> Result<Vec<u32>, CorruptBody> {
        self.read_values::<u32, 4>(count, 0, u32::from_le_bytes)
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

    /// Hashes the rest of the body without decoding it (after a decoding error,
    /// so a damaged file is reported as a checksum mismatch).
    fn drain(&mut self) -> io::Result<()> {
        let mut chunk = vec![0u8; LOAD_CHUNK_BYTES];
        while self.remaining() > 0 {
            let take = usize::try_from(self.remaining()).unwrap_or(usize::MAX).min(chunk.len());
            self.inner.read_exact(&mut chunk[..take])?;
            self.hasher.update(&chunk[..take]);
            self.pos += take as u64;
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

/// Reads and checks an index file: magic, version and length first, then the
/// body decoded as it streams in, then the checksum over everything. A body
/// that fails to decode is still hashed to the end, so a damaged file reports
/// the checksum mismatch rather than whatever the damage looked like.
pub(crate) fn load_checked<T>(
    path: &Path,
    magic: [u8; 8],
    kind: &'static str,
    parse_body: impl FnOnce(&mut BodyReader<'_>) -> Result<T, CorruptBody>,
) -> Result<T, IndexFileError> {
    let file = File::open(path).map_err(io_error(path, "opening the index"))?;
    let actual_len = file.metadata().map_err(io_error(path, "reading the index's metadata"))?.len();
    let mut input = std::io::BufReader::with_capacity(LOAD_CHUNK_BYTES, file);
    let mut header = vec![0u8; usize::try_from(actual_len.min(HEADER_BYTES)).unwrap_or(0)];
    input.read_exact(&mut header).map_err(io_error(path, "reading the index"))?;
    let body_len = check_header(path, &header, actual_len, magic, kind)?;
    let mut hasher = Xxh3::new();
    hasher.update(&header);
    let mut reader = BodyReader { inner: &mut input, hasher: &mut hasher, pos: 0, len: body_len, base: HEADER_BYTES };
    let parsed = parse_body(&mut reader).and_then(|t| reader.finish().map(|()| t));
    if parsed.is_err() {
        reader.drain().map_err(io_error(path, "reading the index"))?;
    }
    let mut stored = [0u8; 8];
    input.read_exact(&mut stored).map_err(io_error(path, "reading the index's checksum"))?;
    let stored = u64::from_le_bytes(stored);
    let computed = hasher.digest();
    if stored != computed {
        return Err(IndexFileError::ChecksumMismatch { path: path.to_path_buf(), stored, computed });
    }
    parsed.map_err(|c| IndexFileError::Corrupt { path: path.to_path_buf(), offset: c.offset, reason: c.reason })
}

/// Validates the header against the file's length; returns the body length.
fn check_header(
    path: &Path,
    header: &[u8],
    actual_len: u64,
    magic: [u8; 8],
    kind: &'static str,
) -> Result<u64, IndexFileError> {
    let magic_seen = &header[..header.len().min(magic.len())];
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
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != FORMAT_VERSION {
        return Err(IndexFileError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let mut body_len = [0u8; 8];
    body_len.copy_from_slice(&header[16..24]);
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
    Ok(body_len)
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
