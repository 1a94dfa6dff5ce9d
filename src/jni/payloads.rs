//! Structured results that cross the boundary as flat arrays, each with one layout: the names
//! and order of its fields.
//!
//! The encoders here fill their arrays through these layouts, and `Payloads.java` declares the
//! same layouts for the Java decoders; `PayloadContractTest` compares the two through
//! `Native.payloadLayouts()`, so renaming, adding or moving a field on one side alone fails.
//! Arrays, not Java objects built from Rust, keep the boundary free of class and constructor
//! lookups.

use jni::objects::JString;
use jni::Env;
use samza_azure_coordinator_macros::natives;

use super::convert::string_array;

/// The natives of `Native.java` this file implements, in the `#[natives]` block below (see
/// `registry.rs`).
pub(super) struct Natives;

/// A payload's fields: `head` once, then `each` repeated to the end of the array.
pub struct Layout {
    pub name: &'static str,
    pub head: &'static [&'static str],
    pub each: &'static [&'static str],
}

impl Layout {
    /// `name: head,fields | repeated,fields`, the form Java compares.
    fn describe(&self) -> String {
        format!(
            "{}: {} | {}",
            self.name,
            self.head.join(","),
            self.each.join(",")
        )
    }

    /// Where `field` of the head is sent.
    pub fn position(&self, field: &str) -> crate::Result<usize> {
        self.head.iter().position(|f| *f == field).ok_or_else(|| {
            crate::error::Error::internal(format!("{} has no field {field}", self.name))
        })
    }

    /// Whether `len` fields fit this layout.
    #[cfg(test)]
    fn fits(&self, len: usize) -> bool {
        if self.each.is_empty() {
            len == self.head.len()
        } else {
            len >= self.head.len() && (len - self.head.len()) % self.each.len() == 0
        }
    }
}

/// A record of `i64` fields, encoded as a Java `long[]` in declaration order: the struct makes
/// every encoder set every field by name, and its layout lists them in the order they are sent.
macro_rules! long_record {
    ($(#[$meta:meta])* $record:ident = $name:literal { $($field:ident),+ $(,)? }) => {
        $(#[$meta])*
        pub struct $record {
            $(pub $field: i64),+
        }

        impl $record {
            pub const LAYOUT: Layout = Layout {
                name: $name,
                head: &[$(stringify!($field)),+],
                each: &[],
            };

            pub fn to_array(&self) -> Vec<i64> {
                vec![$(self.$field),+]
            }
        }
    };
}

/// A value of a string field: text, or a Java null.
pub trait StringField {
    fn into_field(self) -> Option<String>;
}

impl StringField for String {
    fn into_field(self) -> Option<String> {
        Some(self)
    }
}

impl StringField for Option<String> {
    fn into_field(self) -> Option<String> {
        self
    }
}

/// A record of string fields (a [`string_record!`]), as the encoders send it.
pub trait StringRecord {
    /// Appends the fields in layout order.
    fn push_to(self, out: &mut Vec<Option<String>>);
}

/// A record of string fields, encoded as part of a Java `String[]` in declaration order: once
/// (`fields`), or repeated after a head (`head [...] each`), one record per group.
macro_rules! string_record {
    ($(#[$meta:meta])* $record:ident = $name:literal fields { $($field:ident),+ $(,)? }) => {
        string_record!(@struct $(#[$meta])* $record { $($field: String),+ });
        impl $record {
            pub const LAYOUT: Layout = Layout {
                name: $name,
                head: &[$(stringify!($field)),+],
                each: &[],
            };
        }
    };
    ($(#[$meta:meta])* $record:ident = $name:literal head [$($head:literal),*] each { $($field:ident: $ty:ty),+ $(,)? }) => {
        string_record!(@struct $(#[$meta])* $record { $($field: $ty),+ });
        impl $record {
            pub const LAYOUT: Layout = Layout {
                name: $name,
                head: &[$($head),*],
                each: &[$(stringify!($field)),+],
            };
        }
    };
    (@struct $(#[$meta:meta])* $record:ident { $($field:ident: $ty:ty),+ }) => {
        $(#[$meta])*
        pub struct $record {
            $(pub $field: $ty),+
        }

        impl StringRecord for $record {
            fn push_to(self, out: &mut Vec<Option<String>>) {
                $(out.push(StringField::into_field(self.$field));)+
            }
        }
    };
}

string_record!(
    /// `jobStorageNames`: where a job's state lives (the JobModel blob, inside `container`, holds
    /// the leader lease too).
    JobStorageNames = "jobStorageNames" fields { container, table, checkpoint_table, job_model_blob }
);

string_record!(
    /// `checkpointRead`: one stored checkpoint of a task per group.
    StoredCheckpoint = "checkpointRead" head [] each { version: String, text: String }
);

string_record!(
    /// `checkpointUpstream`: one row of upstream samza-azure's table per group.
    UpstreamOffset = "checkpointUpstream" head [] each { row_key: String, offset: Option<String> }
);

string_record!(
    /// `pollLogs`: the number of records dropped, then one native log record per group.
    LogLine = "pollLogs" head ["dropped"] each { level: String, target: String, message: String }
);

/// `docRead`, `docReadIfChanged`: an `Object[]` of the body (`byte[]`) and its ETag.
pub const DOCUMENT: Layout = Layout {
    name: "document",
    head: &["body", "etag"],
    each: &[],
};

long_record!(
    /// `coordinatorMetrics`: the coordinator's counters and its storage client's.
    CoordinatorMetrics = "coordinatorMetrics" {
        is_leader,
        running_version,
        seen_version,
        rebalances,
        barrier_timeouts,
        heartbeat_failures,
        lease_losses,
        last_rebalance_ms,
        fences,
        storage_requests,
        storage_errors,
        storage_latency_micros,
    }
);

long_record!(
    /// `coordinatorFence`: how long the processor may still process.
    FenceReading = "coordinatorFence" { epoch, nanos_left }
);

long_record!(
    /// `storageStats`: a storage client's counters since it was opened.
    StorageStats = "storageStats" { requests, errors, latency_micros }
);

/// `coordinatorNextEvent`, one layout per kind; the first field is the kind.
pub mod event {
    use super::Layout;

    pub const LEADER: Layout = Layout {
        name: "event.leader",
        head: &["kind", "leader"],
        each: &[],
    };
    pub const COMPUTE: Layout = Layout {
        name: "event.compute",
        head: &["kind", "version", "previous"],
        each: &["member"],
    };
    pub const PREPARE: Layout = Layout {
        name: "event.prepare",
        head: &["kind", "version", "model"],
        each: &[],
    };
    pub const START: Layout = Layout {
        name: "event.start",
        head: &["kind", "version", "model", "epoch"],
        each: &[],
    };
    pub const FENCE: Layout = Layout {
        name: "event.fence",
        head: &["kind"],
        each: &[],
    };
    pub const RELEASE: Layout = Layout {
        name: "event.release",
        head: &["kind"],
        each: &[],
    };
    pub const STOPPED: Layout = Layout {
        name: "event.stopped",
        head: &["kind", "failed"],
        each: &[],
    };

    /// The kind field: the layout's name after `event.`.
    pub fn kind(layout: &Layout) -> String {
        layout.name.trim_start_matches("event.").to_owned()
    }
}

/// A boolean field as Java's decoder reads it.
pub fn flag(value: bool) -> String {
    u8::from(value).to_string()
}

/// Every layout, in the order `Payloads.java` lists them.
pub const LAYOUTS: &[Layout] = &[
    CoordinatorMetrics::LAYOUT,
    FenceReading::LAYOUT,
    StorageStats::LAYOUT,
    JobStorageNames::LAYOUT,
    StoredCheckpoint::LAYOUT,
    UpstreamOffset::LAYOUT,
    LogLine::LAYOUT,
    DOCUMENT,
    event::LEADER,
    event::COMPUTE,
    event::PREPARE,
    event::START,
    event::FENCE,
    event::RELEASE,
    event::STOPPED,
];

#[natives]
impl Natives {
    /// What `PayloadContractTest` compares `Payloads.java` with.
    fn payload_layouts(env: Env) -> [JString] {
        string_array(
            env,
            LAYOUTS
                .iter()
                .map(Layout::describe)
                .collect::<Vec<_>>()
                .into_iter(),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::coordinator::Event;
    use crate::jni::coordinator::encode;

    /// Every event kind encodes to its layout (the kind, then as many fields as it names).
    #[test]
    fn events_fit_their_layouts() {
        let failure = Mutex::new(None);
        let cases = [
            (Event::Leadership { leader: true }, &event::LEADER),
            (
                Event::Compute {
                    version: 3,
                    members: vec!["p1".into(), "p2".into()],
                    previous: "{}".into(),
                },
                &event::COMPUTE,
            ),
            (
                Event::Prepare {
                    version: 3,
                    model: "{}".into(),
                },
                &event::PREPARE,
            ),
            (
                Event::Start {
                    version: 3,
                    model: "{}".into(),
                    epoch: 1,
                },
                &event::START,
            ),
            (Event::Fence, &event::FENCE),
            (Event::Release, &event::RELEASE),
            (Event::Stopped { error: None }, &event::STOPPED),
        ];
        for (e, layout) in cases {
            let fields = encode(e, &failure);
            assert_eq!(fields[0], event::kind(layout));
            assert!(layout.fits(fields.len()), "{}: {fields:?}", layout.name);
        }
    }

    /// String records push their fields in layout order, a missing offset as a null.
    #[test]
    fn string_records_follow_their_layouts() {
        let mut fields = vec![Some("0".to_owned())];
        LogLine {
            level: "INFO".into(),
            target: "t".into(),
            message: "m".into(),
        }
        .push_to(&mut fields);
        assert!(LogLine::LAYOUT.fits(fields.len()));
        let mut rows = Vec::new();
        UpstreamOffset {
            row_key: "k".into(),
            offset: None,
        }
        .push_to(&mut rows);
        assert_eq!(rows, vec![Some("k".to_owned()), None]);
        assert_eq!(UpstreamOffset::LAYOUT.each, ["row_key", "offset"]);
        assert_eq!(DOCUMENT.position("etag").ok(), Some(1));
    }

    #[test]
    fn layouts_are_described_as_java_reads_them() {
        assert_eq!(
            FenceReading::LAYOUT.describe(),
            "coordinatorFence: epoch,nanos_left | "
        );
        assert_eq!(
            event::COMPUTE.describe(),
            "event.compute: kind,version,previous | member"
        );
    }
}
