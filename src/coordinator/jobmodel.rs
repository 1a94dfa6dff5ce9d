//! The JobModel document: one blob per job holding the version, the members, the barrier
//! phase and the model, replaced as a whole in one conditional write under the leader lease.
//!
//! Layout: one line of JSON (the header), `\n`, then the model bytes (the JSON written by
//! Samza's `SamzaObjectMapper`, config stripped by the Java side), gzip-compressed when large.
//! Followers check the blob with If-None-Match and download it only when it changed.

use std::io::{Read, Write};

use bytes::Bytes;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// Models larger than this are gzip-compressed.
pub const COMPRESS_ABOVE: usize = 64 * 1024;
/// Largest document we write. A single Put Blob allows far more, but a document this size
/// is re-read by every processor on every rebalance; a model above it is a configuration
/// problem to report, not to truncate.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;
/// Largest decompressed model we accept (guards against a corrupt length).
pub const MAX_MODEL_BYTES: usize = 512 * 1024 * 1024;

const FORMAT: u32 = 1;

/// Where the barrier of a version stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// No model yet (the document as first created).
    None,
    /// Published; waiting for every processor in `must_ack` to acknowledge.
    Pending,
    /// Everyone acknowledged: members start this version.
    Done,
    /// Abandoned (a timeout or a member died); a newer version follows.
    Abandoned,
}

/// One member of a version: who, and which incarnation of it the model was computed for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRef {
    pub id: String,
    pub incarnation: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    pub version: u64,
    pub phase: Phase,
    /// Processor that wrote this document (as leader).
    pub leader: String,
    /// Processors the model assigns work to, sorted by id.
    pub members: Vec<MemberRef>,
    /// Processors that must acknowledge before anyone starts this version: every processor
    /// alive when it was published, so no one can still hold a partition the model moves.
    pub must_ack: Vec<String>,
    /// "json" or "gzip".
    pub encoding: String,
    /// Length of the stored model bytes.
    pub model_bytes: usize,
    /// Names this version's content: random per computed version. Acknowledgements carry it,
    /// so an acknowledgement counts only for the content it was given for, even if a version
    /// number were ever reused. Empty in documents written before it existed.
    #[serde(default)]
    pub content: String,
}

/// A parsed document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelDocument {
    pub header: Header,
    /// The model JSON (decompressed); empty when there is no model.
    pub model: String,
}

impl ModelDocument {
    /// The document a job starts with.
    pub fn initial() -> Self {
        ModelDocument {
            header: Header {
                format: FORMAT,
                version: 0,
                phase: Phase::None,
                leader: String::new(),
                members: Vec::new(),
                must_ack: Vec::new(),
                encoding: "json".into(),
                model_bytes: 0,
                content: String::new(),
            },
            model: String::new(),
        }
    }

    pub fn new(
        version: u64,
        leader: &str,
        members: Vec<MemberRef>,
        must_ack: Vec<String>,
        model: String,
    ) -> Self {
        ModelDocument {
            header: Header {
                format: FORMAT,
                version,
                phase: Phase::Pending,
                leader: leader.to_owned(),
                members,
                must_ack,
                encoding: "json".into(),
                model_bytes: 0,
                content: format!("{:016x}", crate::random::u64()),
            },
            model,
        }
    }

    pub fn version(&self) -> u64 {
        self.header.version
    }

    pub fn phase(&self) -> Phase {
        self.header.phase
    }

    pub fn with_phase(&self, phase: Phase) -> Self {
        let mut d = self.clone();
        d.header.phase = phase;
        d
    }

    pub fn is_member(&self, id: &str) -> bool {
        self.header.members.iter().any(|m| m.id == id)
    }

    pub fn must_ack(&self, id: &str) -> bool {
        self.header.must_ack.iter().any(|m| m == id)
    }

    pub fn encode(&self) -> Result<Bytes> {
        self.encode_within(MAX_DOCUMENT_BYTES)
    }

    fn encode_within(&self, limit: usize) -> Result<Bytes> {
        let (encoding, model) = if self.model.len() > COMPRESS_ABOVE {
            let mut gz = GzEncoder::new(Vec::new(), Compression::default());
            gz.write_all(self.model.as_bytes())
                .and_then(|_| gz.finish())
                .map(|b| ("gzip", b))
                .map_err(|e| Error::internal(format!("compressing the job model: {e}")))?
        } else {
            ("json", self.model.as_bytes().to_vec())
        };
        let mut header = self.header.clone();
        header.encoding = encoding.into();
        header.model_bytes = model.len();
        let mut out = serde_json::to_vec(&header)
            .map_err(|e| Error::internal(format!("encoding the job model header: {e}")))?;
        out.push(b'\n');
        out.extend_from_slice(&model);
        if out.len() > limit {
            return Err(Error::new(
                ErrorKind::BadRequest,
                format!(
                    "job model version {} is {} bytes after compression ({} bytes of JSON); \
                     the limit is {limit} bytes. Reduce the number of tasks or \
                     input partitions per job",
                    self.header.version,
                    out.len(),
                    self.model.len()
                ),
            ));
        }
        Ok(Bytes::from(out))
    }

    pub fn decode(body: &[u8]) -> Result<Self> {
        let corrupt =
            |why: String| Error::internal(format!("job model document is corrupt: {why}"));
        let split = body
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| corrupt("no header line".into()))?;
        let header: Header =
            serde_json::from_slice(&body[..split]).map_err(|e| corrupt(format!("header: {e}")))?;
        if header.format != FORMAT {
            return Err(corrupt(format!(
                "format {} is not {FORMAT}; was it written by a newer version?",
                header.format
            )));
        }
        let raw = &body[split + 1..];
        if raw.len() != header.model_bytes {
            return Err(corrupt(format!(
                "model is {} bytes, header says {}",
                raw.len(),
                header.model_bytes
            )));
        }
        let model = match header.encoding.as_str() {
            "json" => String::from_utf8(raw.to_vec()).map_err(|e| corrupt(e.to_string()))?,
            "gzip" => {
                let mut s = String::new();
                GzDecoder::new(raw)
                    .take(MAX_MODEL_BYTES as u64 + 1)
                    .read_to_string(&mut s)
                    .map_err(|e| corrupt(format!("gzip: {e}")))?;
                if s.len() > MAX_MODEL_BYTES {
                    return Err(corrupt("model exceeds 512 MiB".into()));
                }
                s
            }
            other => return Err(corrupt(format!("unknown encoding '{other}'"))),
        };
        Ok(ModelDocument { header, model })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(model: String) -> ModelDocument {
        let members = vec![MemberRef {
            id: "a".into(),
            incarnation: "1".into(),
        }];
        ModelDocument::new(7, "a", members, vec!["a".into(), "b".into()], model)
    }

    #[test]
    fn round_trips_small_and_large_models() {
        for model in [
            "{}".to_string(),
            "{\"tasks\":[".to_string() + &"1,".repeat(100_000) + "1]}",
        ] {
            let d = doc(model);
            let bytes = d.encode().unwrap();
            let back = ModelDocument::decode(&bytes).unwrap();
            assert_eq!(back.model, d.model);
            assert_eq!(back.header.version, 7);
            assert!(back.must_ack("b") && !back.is_member("b"));
            if d.model.len() > COMPRESS_ABOVE {
                assert_eq!(back.header.encoding, "gzip");
                assert!(bytes.len() < d.model.len() / 10);
            }
        }
    }

    #[test]
    fn oversize_models_fail_clearly() {
        // Random-ish text that does not compress well below the limit.
        let mut x: u64 = 1;
        let model: String = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (b'!' + (x % 90) as u8) as char
            })
            .collect();
        let Err(e) = doc(model).encode_within(100_000) else {
            panic!("an oversize model was accepted");
        };
        assert!(e.message().contains("the limit is 100000 bytes"), "{e}");
    }

    #[test]
    fn corruption_is_reported_not_guessed() {
        let bytes = doc("{}".into()).encode().unwrap();
        assert!(ModelDocument::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(ModelDocument::decode(b"garbage").is_err());
    }
}
