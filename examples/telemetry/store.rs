//! The writer: JSON lines per session, appended in batches, rotated past a
//! size, and the whole directory held to a bound on disk by deleting the
//! files written to longest ago.
//!
//! A session `S` writes `S.jsonl`; past `max_file_bytes` it becomes
//! `S.1.jsonl` (the one before becomes `S.2.jsonl`, and so on) and a new
//! `S.jsonl` starts. A session keeps at most `max_files` files; past
//! `max_disk_bytes` for the directory, the files least recently written are
//! deleted, whoever they belong to (a session being written keeps its
//! current file).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::line::Line;
use crate::pipeline::Counters;

/// The bounds of the directory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// A session's current file is rotated before it passes this.
    pub(crate) max_file_bytes: u64,
    /// Files per session, the current one included.
    pub(crate) max_files: u32,
    /// Bytes of the whole directory.
    pub(crate) max_disk_bytes: u64,
    /// Files held open at once (the ones written to last).
    pub(crate) max_open: usize,
}

/// One file of the directory.
#[derive(Debug)]
struct FileInfo {
    bytes: u64,
    /// When it was last written to, in writes of this store (older files
    /// found at start count as written before any).
    written: u64,
}

/// A session's current file, open for appending.
struct Open {
    file: File,
    used: u64,
}

/// The directory of session files.
pub(crate) struct Store {
    dir: PathBuf,
    limits: Limits,
    files: HashMap<PathBuf, FileInfo>,
    disk_bytes: u64,
    open: HashMap<String, Open>,
    /// The last line number of each session with an open file.
    seqs: HashMap<String, u64>,
    clock: u64,
    counters: Arc<Counters>,
}

/// `dir/key.jsonl`, or `dir/key.n.jsonl` for its `n`th rotated file.
pub(crate) fn file_path(dir: &Path, key: &str, n: u32) -> PathBuf {
    if n == 0 {
        dir.join(format!("{key}.jsonl"))
    } else {
        dir.join(format!("{key}.{n}.jsonl"))
    }
}

/// The session key of a file name of this directory.
pub(crate) fn key_of(name: &str) -> Option<&str> {
    let stem = name.strip_suffix(".jsonl")?;
    Some(match stem.rsplit_once('.') {
        Some((key, n)) if n.bytes().all(|b| b.is_ascii_digit()) => key,
        _ => stem,
    })
}

/// The last `max` lines of a session (its current file, then the one
/// before it if that is not enough), oldest first, reading at most 256 KiB
/// of each file.
pub(crate) fn recent(dir: &Path, key: &str, max: usize) -> io::Result<Vec<Line>> {
    let mut lines = Vec::new();
    for n in 0..2 {
        let mut older = match tail_lines(&file_path(dir, key, n), 256 << 10) {
            Ok(lines) => lines,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        older.append(&mut lines);
        lines = older;
        if lines.len() >= max {
            break;
        }
    }
    let skip = lines.len().saturating_sub(max);
    Ok(lines.split_off(skip))
}

/// The whole lines within the last `max_bytes` of `path` that parse.
fn tail_lines(path: &Path, max_bytes: u64) -> io::Result<Vec<Line>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(max_bytes);
    file.seek(SeekFrom::Start(start))?;
    let mut text = String::new();
    file.take(max_bytes).read_to_string(&mut text)?;
    let text = if start > 0 {
        // The first line may be cut: start after it.
        text.split_once('\n').map_or("", |(_, rest)| rest)
    } else {
        &text
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

impl Store {
    /// The store of `dir` (made if missing), with the files already there
    /// counted against the bound.
    pub(crate) fn open(dir: &Path, limits: Limits, counters: Arc<Counters>) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut store = Store {
            dir: dir.to_owned(),
            limits,
            files: HashMap::new(),
            disk_bytes: 0,
            open: HashMap::new(),
            seqs: HashMap::new(),
            clock: 0,
            counters,
        };
        let mut found: Vec<(std::time::SystemTime, PathBuf, u64)> = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_str().and_then(key_of).is_none() {
                continue;
            }
            let meta = entry.metadata()?;
            if meta.is_file() {
                let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                found.push((modified, entry.path(), meta.len()));
            }
        }
        // Oldest first, so that they rank as written before one another.
        found.sort();
        for (_, path, bytes) in found {
            store.clock += 1;
            store.disk_bytes += bytes;
            store.files.insert(
                path,
                FileInfo {
                    bytes,
                    written: store.clock,
                },
            );
        }
        store.evict(None)?;
        Ok(store)
    }

    /// The bytes the directory holds.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.disk_bytes
    }

    /// Appends `lines` to session `key`'s file (rotating it when it would
    /// pass its size), numbering them after the session's last line.
    pub(crate) fn append(&mut self, key: &str, lines: &mut [Line]) -> io::Result<()> {
        let mut seq = self.last_seq(key);
        let mut out = Vec::new();
        for line in lines.iter_mut() {
            seq += 1;
            line.set_seq(seq);
            let start = out.len();
            serde_json::to_writer(&mut out, line).map_err(io::Error::other)?;
            out.push(b'\n');
            let used = self.open.get(key).map_or(0, |o| o.used);
            if used + out.len() as u64 > self.limits.max_file_bytes && used + start as u64 > 0 {
                // What came before this line fills the file: write it, then
                // start the next file with this line.
                let rest = out.split_off(start);
                self.write(key, &out)?;
                self.rotate(key)?;
                out = rest;
            }
        }
        self.write(key, &out)?;
        self.seqs.insert(key.to_owned(), seq);
        self.counters
            .written
            .fetch_add(lines.len() as u64, Ordering::Relaxed);
        self.evict(Some(key))
    }

    /// The last line number of session `key`: known, or read from the end
    /// of its newest file.
    fn last_seq(&mut self, key: &str) -> u64 {
        if let Some(seq) = self.seqs.get(key) {
            return *seq;
        }
        let seq = (0..2)
            .find_map(|n| {
                tail_lines(&file_path(&self.dir, key, n), 64 << 10)
                    .ok()?
                    .last()
                    .map(Line::seq)
            })
            .unwrap_or(0);
        self.seqs.insert(key.to_owned(), seq);
        seq
    }

    fn write(&mut self, key: &str, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if !self.open.contains_key(key) {
            self.close_least_recent();
            let path = file_path(&self.dir, key, 0);
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            let used = file.metadata()?.len();
            self.open.insert(key.to_owned(), Open { file, used });
        }
        let open = self.open.get_mut(key).expect("opened above");
        open.file.write_all(bytes)?;
        open.used += bytes.len() as u64;
        self.clock += 1;
        let info = self
            .files
            .entry(file_path(&self.dir, key, 0))
            .or_insert(FileInfo {
                bytes: 0,
                written: 0,
            });
        info.bytes += bytes.len() as u64;
        info.written = self.clock;
        self.disk_bytes += bytes.len() as u64;
        Ok(())
    }

    /// Closes the file written to least recently when `max_open` are open.
    fn close_least_recent(&mut self) {
        if self.open.len() < self.limits.max_open.max(1) {
            return;
        }
        let oldest = self
            .open
            .keys()
            .min_by_key(|k| {
                self.files
                    .get(&file_path(&self.dir, k, 0))
                    .map_or(0, |f| f.written)
            })
            .cloned();
        if let Some(key) = oldest {
            // Its last line number is read again from the file when needed,
            // so that what this store remembers stays bounded by `max_open`.
            self.open.remove(&key);
            self.seqs.remove(&key);
        }
    }

    /// `key.jsonl` becomes `key.1.jsonl`, each older one moves up one, and
    /// the one past `max_files` is deleted.
    fn rotate(&mut self, key: &str) -> io::Result<()> {
        self.open.remove(key);
        let last = self.limits.max_files.max(1) - 1;
        self.delete(&file_path(&self.dir, key, last))?;
        for n in (0..last).rev() {
            let from = file_path(&self.dir, key, n);
            if let Some(info) = self.files.remove(&from) {
                let to = file_path(&self.dir, key, n + 1);
                fs::rename(&from, &to)?;
                self.files.insert(to, info);
            }
        }
        self.counters.rotated.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn delete(&mut self, path: &Path) -> io::Result<()> {
        let Some(info) = self.files.remove(path) else {
            return Ok(());
        };
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.disk_bytes -= info.bytes;
        Ok(())
    }

    /// Deletes the files written to least recently until the directory is
    /// within its bound, sparing `writing`'s current file.
    fn evict(&mut self, writing: Option<&str>) -> io::Result<()> {
        let spare = writing.map(|key| file_path(&self.dir, key, 0));
        while self.disk_bytes > self.limits.max_disk_bytes {
            let oldest = self
                .files
                .iter()
                .filter(|(path, _)| Some(*path) != spare.as_ref())
                .min_by_key(|(_, info)| info.written)
                .map(|(path, info)| (path.clone(), info.bytes));
            let Some((path, bytes)) = oldest else {
                break;
            };
            if let Some(key) = path.file_name().and_then(|n| n.to_str()).and_then(key_of)
                && path == file_path(&self.dir, key, 0)
            {
                self.open.remove(key);
                self.seqs.remove(key);
            }
            self.delete(&path)?;
            self.counters.evicted_files.fetch_add(1, Ordering::Relaxed);
            self.counters
                .evicted_bytes
                .fetch_add(bytes, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::LossesLine;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sente-lite-telemetry-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn lines(n: usize, session: &str) -> Vec<Line> {
        (0..n)
            .map(|_| {
                Line::Losses(LossesLine {
                    session: session.into(),
                    over_budget: 1,
                    ..LossesLine::default()
                })
            })
            .collect()
    }

    fn size(path: &Path) -> u64 {
        fs::metadata(path).map_or(0, |m| m.len())
    }

    #[test]
    fn a_session_rotates_keeps_its_files_and_numbers_on() {
        let dir = scratch("rotate");
        let limits = Limits {
            max_file_bytes: 1000,
            max_files: 3,
            max_disk_bytes: 1 << 20,
            max_open: 4,
        };
        let mut store = Store::open(&dir, limits, Arc::default()).unwrap();
        for _ in 0..10 {
            store.append("s1", &mut lines(10, "s1")).unwrap();
        }
        for n in 0..3 {
            let file = file_path(&dir, "s1", n);
            assert!(size(&file) > 0 && size(&file) <= 1000, "{file:?}");
        }
        assert!(!file_path(&dir, "s1", 3).exists());
        let newest = recent(&dir, "s1", 1000).unwrap();
        assert_eq!(newest.last().unwrap().seq(), 100);
        assert!(newest.windows(2).all(|w| w[1].seq() == w[0].seq() + 1));
        // A new store (a restarted server) numbers on from the files.
        drop(store);
        let mut store = Store::open(&dir, limits, Arc::default()).unwrap();
        store.append("s1", &mut lines(1, "s1")).unwrap();
        assert_eq!(recent(&dir, "s1", 1).unwrap()[0].seq(), 101);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn many_sessions_keep_what_the_store_remembers_bounded() {
        let dir = scratch("many");
        let limits = Limits {
            max_file_bytes: 1 << 20,
            max_files: 2,
            max_disk_bytes: 20_000,
            max_open: 8,
        };
        let mut store = Store::open(&dir, limits, Arc::default()).unwrap();
        for n in 0..500 {
            let key = format!("s{n}");
            store.append(&key, &mut lines(1, &key)).unwrap();
            assert!(store.open.len() <= 8 && store.seqs.len() <= 8);
            // Every file holds a line of 100 bytes or more.
            assert!(store.files.len() <= 20_000 / 100, "{}", store.files.len());
        }
        // A session written again numbers on from its file.
        store.append("s499", &mut lines(1, "s499")).unwrap();
        assert_eq!(recent(&dir, "s499", 10).unwrap().last().unwrap().seq(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_directory_keeps_to_its_bound_by_deleting_the_files_written_longest_ago() {
        let dir = scratch("evict");
        let counters = Arc::<Counters>::default();
        let limits = Limits {
            max_file_bytes: 4000,
            max_files: 2,
            max_disk_bytes: 6000,
            max_open: 2,
        };
        let mut store = Store::open(&dir, limits, Arc::clone(&counters)).unwrap();
        for session in ["a", "b", "c", "d"] {
            store.append(session, &mut lines(20, session)).unwrap();
            assert!(store.disk_bytes() <= 6000, "{}", store.disk_bytes());
        }
        let on_disk: u64 = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert_eq!(on_disk, store.disk_bytes());
        assert!(!file_path(&dir, "a", 0).exists(), "the oldest went first");
        assert!(file_path(&dir, "d", 0).exists());
        assert!(counters.evicted_files.load(Ordering::Relaxed) >= 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
