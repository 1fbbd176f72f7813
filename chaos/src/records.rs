//! What server processes recorded. Each run of a server process (from its
//! start to its death) appends one line per message it handled to a file of
//! its own, with one `write` each: a line written reached the kernel, so a
//! SIGKILL does not take it back.
//!
//! A line is `KIND CLIENT SEQ`: `E` a one-way event, `R` a request, `P` a
//! publication request, `H` and `F` a client's marks before and after
//! traffic (`SEQ` 0).

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// One recorded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `E`, `R`, `P`, `H` or `F`.
    pub kind: char,
    /// The client that sent it.
    pub client: String,
    /// Its number.
    pub seq: u64,
}

/// Everything one server run recorded, in order.
#[derive(Debug, Clone)]
pub struct RunRecords {
    /// The run's id (`NODE-N`: the node and its start count).
    pub run: String,
    /// Its records, in the order they were written.
    pub records: Vec<Record>,
}

impl RunRecords {
    /// Reads the file of run `run`. A line that does not parse is an error:
    /// a record is written whole or not at all.
    pub fn read(run: &str, path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let mut records = Vec::new();
        for line in text.lines() {
            let mut fields = line.split(' ');
            let parsed = (|| {
                let kind = fields.next()?.chars().next()?;
                let client = fields.next()?.to_owned();
                let seq = fields.next()?.parse().ok()?;
                Some(Record { kind, client, seq })
            })();
            records.push(parsed.ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: bad record {line:?}", path.display()),
                )
            })?);
        }
        Ok(Self {
            run: run.to_owned(),
            records,
        })
    }
}

/// The record file a server process appends to.
pub struct RecordFile {
    file: Mutex<std::fs::File>,
}

impl RecordFile {
    /// Creates the file at `path`, which must not exist: a run's records
    /// are its own.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }

    /// Appends one record with a single `write`, before the message is
    /// answered or published.
    pub fn append(&self, kind: char, client: &str, seq: u64) -> std::io::Result<()> {
        let line = format!("{kind} {client} {seq}\n");
        self.file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(line.as_bytes())
    }
}
