//! The on-disk spool of one sink: batches that could not be written yet, one
//! file each, replayed oldest first.
//!
//! Files are `{seq:020}.jsonz` in `{data_dir}/spool/{sink}/`: the batch as
//! JSON, zlib-compressed at the fastest level (a batch's scans repeat
//! themselves: about a tenth of the JSON, so a full spool holds ten times
//! the scans). `{seq:020}.json` files, plain JSON, from versions before, are
//! read as well. An empty spool numbers its first file [`FRONT_ROOM`], so
//! that batches older than every spooled one (a write that failed while
//! newer batches were already spilled here, see the recorder) can go in
//! front of them ([`Spool::push_front`]). A file is written beside its final
//! name, fsynced and renamed into place, so a crash leaves whole batches or
//! none. A batch keeps its id, so a replay of a batch that was
//! in fact applied is recognised by the sink.

use crate::batch::Batch;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub struct Spool {
    dir: PathBuf,
    next_seq: u64,
    bytes: u64,
    files: u64,
    max_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool full ({0} bytes)")]
    Full(u64),
    #[error("spool i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("spool file {0} is corrupt: {1}")]
    Corrupt(PathBuf, String),
}

/// The first sequence number of an empty spool: room for batches pushed in front.
pub const FRONT_ROOM: u64 = 1 << 40;

impl Spool {
    pub fn open(dir: PathBuf, max_bytes: u64) -> Result<Self, SpoolError> {
        std::fs::create_dir_all(&dir)?;
        let mut spool = Self {
            dir,
            next_seq: FRONT_ROOM,
            bytes: 0,
            files: 0,
            max_bytes,
        };
        let entries = spool.entries()?;
        if !entries.is_empty() {
            spool.next_seq = 0;
        }
        for (seq, path) in entries {
            spool.next_seq = spool.next_seq.max(seq + 1);
            spool.bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            spool.files += 1;
        }
        Ok(spool)
    }

    pub fn is_empty(&self) -> bool {
        self.files == 0
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes it may still take.
    pub fn room(&self) -> u64 {
        self.max_bytes.saturating_sub(self.bytes)
    }

    /// Spooled files, oldest first.
    fn entries(&self) -> Result<Vec<(u64, PathBuf)>, SpoolError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let seq = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".jsonz").or_else(|| n.strip_suffix(".json")))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(seq) = seq {
                out.push((seq, path));
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn push(&mut self, batch: &Batch) -> Result<(), SpoolError> {
        if self.files == 0 {
            self.next_seq = FRONT_ROOM;
        }
        self.write_file(self.next_seq, batch)?;
        self.next_seq += 1;
        Ok(())
    }

    /// Spools a batch older than every spooled one: it is replayed first.
    /// (A spool left by a version that numbered from 0 may have no room in
    /// front: then the batch goes last, out of order but still applied once.)
    pub fn push_front(&mut self, batch: &Batch) -> Result<(), SpoolError> {
        let first = self.entries()?.first().map(|(seq, _)| *seq);
        match first {
            Some(seq) if seq > 0 => self.write_file(seq - 1, batch),
            _ => self.push(batch),
        }
    }

    /// Writes `batch`, compressed, as the file numbered `seq`: beside it,
    /// fsynced, renamed.
    fn write_file(&mut self, seq: u64, batch: &Batch) -> Result<(), SpoolError> {
        let json = serde_json::to_vec(batch).map_err(std::io::Error::other)?;
        let mut z = flate2::write::ZlibEncoder::new(
            Vec::with_capacity(json.len() / 8),
            flate2::Compression::fast(),
        );
        z.write_all(&json)?;
        let bytes = z.finish()?;
        if self.bytes + bytes.len() as u64 > self.max_bytes {
            return Err(SpoolError::Full(self.max_bytes));
        }
        let path = self.dir.join(format!("{seq:020}.jsonz"));
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        let written = file.write_all(&bytes).and_then(|()| file.sync_all());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        std::fs::rename(&tmp, &path)?;
        self.bytes += bytes.len() as u64;
        self.files += 1;
        Ok(())
    }

    /// The oldest spooled batch, if any.
    pub fn oldest(&mut self) -> Result<Option<(PathBuf, Batch)>, SpoolError> {
        let Some((_, path)) = self.entries()?.into_iter().next() else {
            // Files removed by hand: the spool is empty after all.
            self.files = 0;
            self.bytes = 0;
            return Ok(None);
        };
        let batch = Self::read(&path)?;
        Ok(Some((path, batch)))
    }

    /// The batch spooled in `path` (compressed, or plain JSON by its name).
    fn read(path: &Path) -> Result<Batch, SpoolError> {
        let corrupt =
            |e: &dyn std::fmt::Display| SpoolError::Corrupt(path.to_path_buf(), e.to_string());
        let bytes = std::fs::read(path)?;
        let json = if path.extension().is_some_and(|e| e == "jsonz") {
            let mut json = Vec::with_capacity(bytes.len() * 8);
            flate2::read::ZlibDecoder::new(bytes.as_slice())
                .read_to_end(&mut json)
                .map_err(|e| corrupt(&e))?;
            json
        } else {
            bytes
        };
        let mut batch: Batch = serde_json::from_slice(&json).map_err(|e| corrupt(&e))?;
        share_texts(&mut batch.scans);
        Ok(batch)
    }

    /// Forgets a batch once its sink has it.
    pub fn remove(&mut self, path: &Path) -> Result<(), SpoolError> {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        std::fs::remove_file(path)?;
        self.bytes = self.bytes.saturating_sub(len);
        self.files = self.files.saturating_sub(1);
        Ok(())
    }

    /// Moves an unreadable file aside (kept for an operator, never replayed).
    pub fn quarantine(&mut self, path: &Path) -> Result<(), SpoolError> {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        std::fs::rename(path, path.with_extension("corrupt"))?;
        self.bytes = self.bytes.saturating_sub(len);
        self.files = self.files.saturating_sub(1);
        Ok(())
    }
}

/// Gives the scans of a batch read back from its file one allocation of each
/// repeated text (code, channel, user agent, device, …), as the enricher
/// gave them when they were recorded: decoded from JSON, every scan held its
/// own copy of each, and a batch read back for replay waits in memory for
/// the whole of its write.
fn share_texts(scans: &mut [crate::event::Scan]) {
    let mut shared = crate::enrich::SharedTexts::default();
    for s in scans {
        for t in [
            &mut s.code,
            &mut s.channel,
            &mut s.user_agent,
            &mut s.device,
            &mut s.os,
            &mut s.browser,
            &mut s.in_app,
            &mut s.referrer_host,
            &mut s.country,
            &mut s.source,
            &mut s.bot_reason,
            &mut s.unknown_channel,
            &mut s.step,
            &mut s.route,
        ] {
            *t = shared.share(t.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_oldest_remove_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path().join("s"), 1 << 20).unwrap();
        assert!(spool.is_empty());
        let a = Batch::new(vec![], vec![]);
        let b = Batch::new(vec![], vec![]);
        spool.push(&a).unwrap();
        spool.push(&b).unwrap();
        // A restart finds both, in order.
        let mut spool = Spool::open(dir.path().join("s"), 1 << 20).unwrap();
        let (path, first) = spool.oldest().unwrap().unwrap();
        assert_eq!(first, a);
        spool.remove(&path).unwrap();
        let (path, second) = spool.oldest().unwrap().unwrap();
        assert_eq!(second, b);
        spool.remove(&path).unwrap();
        assert!(spool.is_empty());
        assert!(spool.oldest().unwrap().is_none());
    }

    #[test]
    fn full_spool_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path().to_path_buf(), 10).unwrap();
        assert!(matches!(
            spool.push(&Batch::new(vec![], vec![])),
            Err(SpoolError::Full(10))
        ));
    }

    /// A batch whose write fails while newer ones are already spilled goes in
    /// front of them, so the replay keeps the order the batches were cut in.
    #[test]
    fn push_front_goes_before_every_spooled_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path().to_path_buf(), 1 << 30).unwrap();
        let batches: Vec<Batch> = (0..4).map(|_| Batch::new(vec![], vec![])).collect();
        // 2 and 3 were spilled; then 1 failed, then 0 from memory in front of it.
        spool.push(&batches[2]).unwrap();
        spool.push(&batches[3]).unwrap();
        spool.push_front(&batches[1]).unwrap();
        spool.push_front(&batches[0]).unwrap();
        let mut spool = Spool::open(dir.path().to_path_buf(), 1 << 30).unwrap();
        for want in &batches {
            let (path, got) = spool.oldest().unwrap().unwrap();
            assert_eq!(&got.id, &want.id);
            spool.remove(&path).unwrap();
        }
        assert!(spool.is_empty());
        // Empty again: new batches number from the room in front once more.
        spool.push(&batches[0]).unwrap();
        spool.push_front(&batches[1]).unwrap();
        assert_eq!(spool.oldest().unwrap().unwrap().1.id, batches[1].id);
    }

    /// Batches are spooled compressed, a fraction of their JSON; a plain
    /// JSON file spooled by an earlier version is read too, in its place in
    /// the order.
    #[test]
    fn compressed_files_and_plain_json_ones_of_before() {
        let dir = tempfile::tempdir().unwrap();
        let scans: Vec<crate::event::Scan> = (0..1000u64)
            .map(|n| crate::event::Scan {
                scan_id: crate::ScanId::from_parts(1_780_000_000_000 + n, 1, n)
                    .to_string()
                    .into(),
                ts_ms: 1_780_000_000_000 + n,
                code: "spring".into(),
                channel: "yt".into(),
                visitor_id: format!("{:032x}", u128::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                    .into(),
                user_agent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148"
                    .into(),
                source: "link".into(),
                ..Default::default()
            })
            .collect();
        let older = Batch::new(scans[..10].to_vec(), vec![]);
        let batch = Batch::new(scans, vec![]);
        let json = serde_json::to_vec(&batch).unwrap();
        // An earlier version's file, numbered before the new ones.
        std::fs::write(
            dir.path().join(format!("{:020}.json", FRONT_ROOM - 1)),
            serde_json::to_vec(&older).unwrap(),
        )
        .unwrap();
        let mut spool = Spool::open(dir.path().to_path_buf(), 1 << 30).unwrap();
        let before = spool.bytes();
        spool.push(&batch).unwrap();
        let compressed = spool.bytes() - before;
        assert!(
            compressed * 4 < json.len() as u64,
            "{compressed} bytes spooled for {} of JSON",
            json.len()
        );
        let (path, got) = spool.oldest().unwrap().unwrap();
        assert_eq!(got, older);
        spool.remove(&path).unwrap();
        let (path, got) = spool.oldest().unwrap().unwrap();
        assert!(
            path.to_string_lossy().ends_with(".jsonz"),
            "{}",
            path.display()
        );
        assert_eq!(got, batch);
        // Read back, the scans share their repeated texts again.
        assert!(got.scans[1].user_agent.shares(&got.scans[0].user_agent));
        assert!(got.scans[999].code.shares(&got.scans[0].code));
        assert!(!got.scans[1].visitor_id.shares(&got.scans[0].visitor_id));
        spool.remove(&path).unwrap();
        assert!(spool.is_empty());
    }
}
