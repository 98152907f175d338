//! The fields of a stored payload that the parsers read, picked out by PostgreSQL.
//!
//! Why: a worker used to load each delivery as `payload::text`, and turning a ~25 KB `jsonb`
//! back into text is the largest single cost PostgreSQL has per job (≈ 79 µs for a
//! `pull_request`; this projection ≈ 35 µs, and the worker parses ~1 KB instead of 22 KB). The
//! trees here mirror the `Deserialize` structs of [`crate::github`]; a test parses every fixture
//! both ways and requires the same records, so a field added to a struct but not here is caught.
//!
//! The projection is built as `json` (text) rather than `jsonb`, so nested objects are not
//! rebuilt at every level. Absent and `null` members are dropped (`json_strip_nulls`): the
//! structs treat a missing optional field like `null`. A member that is not an object where the
//! tree expects one is passed through unchanged, so a malformed payload still fails to parse.
//!
//! [`project`] computes the same projection in Rust, in one pass over the text the API has in
//! hand anyway, and the API stores it beside the payload (`webhook_deliveries.projection`):
//! even this projection costs PostgreSQL ~60 µs a row (detoasting 25 KB and walking it), the
//! largest per-job cost of a drain, while the API's pass (which also serves as its JSON check
//! and envelope parse) costs ~3 µs more than the envelope parse it replaces. PostgreSQL's
//! version stays for rows without a usable stored projection: stored before the column existed,
//! made by other trees (another build), or whose payload was edited in place (a trigger clears
//! the projection then).

use std::sync::LazyLock;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// What to keep of a JSON value.
#[derive(Debug, Clone, Copy)]
enum Keep {
    /// The value as it is.
    All,
    /// Only these members of an object.
    Fields(&'static [(&'static str, Keep)]),
}

const ALL: Keep = Keep::All;

const ACCOUNT: Keep = Keep::Fields(&[("id", ALL), ("login", ALL), ("type", ALL)]);

const GIT_REF: Keep = Keep::Fields(&[("ref", ALL), ("sha", ALL)]);

/// `github::Repository` and `github::PushRepository` read the same member.
const REPOSITORY: Keep = Keep::Fields(&[
    ("id", ALL),
    ("name", ALL),
    ("full_name", ALL),
    ("private", ALL),
    ("archived", ALL),
    ("default_branch", ALL),
    ("owner", ACCOUNT),
    ("updated_at", ALL),
    ("pushed_at", ALL),
]);

/// `github::Envelope`: every repository event is parsed as one first.
const ENVELOPE: &[(&str, Keep)] = &[
    ("action", ALL),
    (
        "installation",
        Keep::Fields(&[("id", ALL), ("account", ACCOUNT)]),
    ),
    ("repository", REPOSITORY),
    ("organization", ACCOUNT),
    ("sender", ACCOUNT),
];

const PULL_REQUEST_ID: Keep = Keep::Fields(&[("id", ALL)]);

/// The members each processed repository event adds to the envelope. Events not listed
/// (installation events: rare and small) are read whole.
const EVENTS: &[(&str, &[(&str, Keep)])] = &[
    (
        "pull_request",
        &[
            ("number", ALL),
            (
                "pull_request",
                Keep::Fields(&[
                    ("id", ALL),
                    ("number", ALL),
                    ("title", ALL),
                    ("state", ALL),
                    ("draft", ALL),
                    ("merged", ALL),
                    ("user", ACCOUNT),
                    ("created_at", ALL),
                    ("updated_at", ALL),
                    ("closed_at", ALL),
                    ("merged_at", ALL),
                    ("merge_commit_sha", ALL),
                    ("merged_by", ACCOUNT),
                    ("body", ALL),
                    ("head", GIT_REF),
                    ("base", GIT_REF),
                    ("additions", ALL),
                    ("deletions", ALL),
                    ("changed_files", ALL),
                    ("commits", ALL),
                ]),
            ),
        ],
    ),
    (
        "pull_request_review",
        &[
            (
                "review",
                Keep::Fields(&[
                    ("id", ALL),
                    ("user", ACCOUNT),
                    ("state", ALL),
                    ("submitted_at", ALL),
                    ("commit_id", ALL),
                ]),
            ),
            ("pull_request", PULL_REQUEST_ID),
        ],
    ),
    (
        "pull_request_review_comment",
        &[
            (
                "comment",
                Keep::Fields(&[
                    ("id", ALL),
                    ("pull_request_review_id", ALL),
                    ("user", ACCOUNT),
                    ("created_at", ALL),
                    ("commit_id", ALL),
                ]),
            ),
            ("pull_request", PULL_REQUEST_ID),
        ],
    ),
    (
        "issues",
        &[(
            "issue",
            Keep::Fields(&[
                ("id", ALL),
                ("number", ALL),
                ("title", ALL),
                ("state", ALL),
                ("labels", ALL),
                ("created_at", ALL),
                ("updated_at", ALL),
                ("closed_at", ALL),
                ("user", ACCOUNT),
            ]),
        )],
    ),
    (
        "push",
        &[
            ("ref", ALL),
            ("after", ALL),
            ("deleted", ALL),
            ("commits", ALL),
            ("head_commit", ALL),
        ],
    ),
    ("deployment", DEPLOYMENT_EVENT),
    ("deployment_status", DEPLOYMENT_EVENT),
    (
        "workflow_run",
        &[(
            "workflow_run",
            Keep::Fields(&[
                ("id", ALL),
                ("name", ALL),
                ("workflow_id", ALL),
                ("head_sha", ALL),
                ("head_branch", ALL),
                ("event", ALL),
                ("status", ALL),
                ("conclusion", ALL),
                ("run_number", ALL),
                ("run_attempt", ALL),
                ("created_at", ALL),
                ("updated_at", ALL),
                ("run_started_at", ALL),
            ]),
        )],
    ),
    (
        "check_suite",
        &[(
            "check_suite",
            Keep::Fields(&[
                ("id", ALL),
                ("head_sha", ALL),
                ("head_branch", ALL),
                ("status", ALL),
                ("conclusion", ALL),
                ("app", Keep::Fields(&[("name", ALL)])),
                ("created_at", ALL),
                ("updated_at", ALL),
            ]),
        )],
    ),
];

const DEPLOYMENT_EVENT: &[(&str, Keep)] = &[
    (
        "deployment",
        Keep::Fields(&[
            ("id", ALL),
            ("sha", ALL),
            ("ref", ALL),
            ("task", ALL),
            ("environment", ALL),
            ("production_environment", ALL),
            ("creator", ACCOUNT),
            ("created_at", ALL),
            ("updated_at", ALL),
        ]),
    ),
    (
        "deployment_status",
        Keep::Fields(&[
            ("id", ALL),
            ("state", ALL),
            ("environment", ALL),
            ("creator", ACCOUNT),
            ("created_at", ALL),
            ("updated_at", ALL),
        ]),
    ),
];

/// Joined after `webhook_deliveries` (or any row source with a `payload` column): the payload
/// read from its TOAST storage and decompressed once, as `p`. Without it every `->` of the
/// projection would decompress the whole payload again (measured: 10 members cost 123 µs a row
/// instead of 11 µs). `OFFSET 0` keeps the planner from inlining the subquery.
pub const DETOASTED_PAYLOAD: &str = "LATERAL (SELECT payload #> '{}' AS p OFFSET 0) AS detoasted";

/// An event and the members kept of its payload.
type EventTree = (&'static str, Vec<(&'static str, Keep)>);

/// Each processed repository event's whole tree: the envelope's members, then the event's.
fn trees() -> &'static [EventTree] {
    static TREES: LazyLock<Vec<EventTree>> = LazyLock::new(|| {
        EVENTS
            .iter()
            .map(|(event, fields)| {
                (
                    *event,
                    ENVELOPE.iter().chain(fields.iter()).copied().collect(),
                )
            })
            .collect()
    });
    &TREES
}

/// A SQL expression over the column `event` and the `p` of [`DETOASTED_PAYLOAD`]: the text the
/// parsers need of the delivery (the whole payload for events without a tree).
pub fn payload_text_sql() -> &'static str {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let mut sql = String::from("CASE event");
        for (event, members) in trees() {
            sql.push_str(&format!(
                " WHEN '{}' THEN json_strip_nulls({})::text",
                checked(event),
                object(&[], members.iter())
            ));
        }
        sql.push_str(" ELSE p::text END");
        sql
    });
    &SQL
}

/// Identifies the trees a stored projection was made with: a hash of them (FNV-1a over their
/// `Debug` text, stable across builds). A worker uses a stored projection only when it carries
/// its own version, so changing a tree (or a build with other trees still running beside) never
/// feeds a parser fields it expects but the projection left out.
pub fn version() -> i64 {
    static VERSION: LazyLock<i64> = LazyLock::new(|| {
        let text = format!("{ENVELOPE:?}{EVENTS:?}");
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in text.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Stored as BIGINT: the same 64 bits, signed.
        i64::from_ne_bytes(hash.to_ne_bytes())
    });
    *VERSION
}

/// The projection of a payload (JSON text) of `event`, as [`payload_text_sql`] makes it: the
/// members of the event's tree, `null` members dropped at every depth. `None` for an event
/// without a tree (read whole), for text that is not a JSON object, and for an object with a
/// kept member twice (`jsonb` keeps the last; a stream cannot know which is last) — PostgreSQL's
/// projection is used for those.
pub fn project(event: &str, json: &str) -> Option<String> {
    let (_, members) = trees().iter().find(|(name, _)| *name == event)?;
    if !json.trim_start().starts_with('{') {
        return None;
    }
    let mut out = Vec::with_capacity(1024);
    let mut de = serde_json::Deserializer::from_str(json);
    Filter {
        keep: Tree::Members(members),
        out: &mut out,
    }
    .deserialize(&mut de)
    .ok()?;
    de.end().ok()?;
    String::from_utf8(out).ok()
}

/// What [`Filter`] keeps of the value it reads.
#[derive(Clone, Copy)]
enum Tree<'t> {
    All,
    Members(&'t [(&'static str, Keep)]),
}

impl From<Keep> for Tree<'static> {
    fn from(keep: Keep) -> Self {
        match keep {
            Keep::All => Tree::All,
            Keep::Fields(fields) => Tree::Members(fields),
        }
    }
}

/// Copies one JSON value to `out`, keeping what `keep` says and dropping `null` members.
struct Filter<'t, 'o> {
    keep: Tree<'t>,
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for Filter<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Filter<'_, '_> {
    fn scalar<T: serde::Serialize, E: serde::de::Error>(self, value: T) -> Result<(), E> {
        serde_json::to_writer(&mut *self.out, &value).map_err(E::custom)
    }
}

impl<'de> Visitor<'de> for Filter<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.scalar(v)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.scalar(v)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.scalar(v)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.scalar(v)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.scalar(v)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // Array elements are kept whole (json_strip_nulls keeps `null` elements).
        self.out.push(b'[');
        let mut first = true;
        loop {
            let mark = self.out.len();
            if !first {
                self.out.push(b',');
            }
            let seed = Filter {
                keep: Tree::All,
                out: &mut *self.out,
            };
            if seq.next_element_seed(seed)?.is_none() {
                self.out.truncate(mark);
                break;
            }
            first = false;
        }
        self.out.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.out.push(b'{');
        let mut first = true;
        let mut seen: Vec<&str> = Vec::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let keep = match self.keep {
                Tree::All => Tree::All,
                Tree::Members(members) => match members.iter().find(|(name, _)| *name == key) {
                    Some((name, keep)) => {
                        if seen.contains(name) {
                            return Err(serde::de::Error::custom("a kept member twice"));
                        }
                        seen.push(name);
                        Tree::from(*keep)
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                },
            };
            let mark = self.out.len();
            if !first {
                self.out.push(b',');
            }
            serde_json::to_writer(&mut *self.out, key.as_ref())
                .map_err(serde::de::Error::custom)?;
            self.out.push(b':');
            let value_at = self.out.len();
            map.next_value_seed(Filter {
                keep,
                out: &mut *self.out,
            })?;
            if &self.out[value_at..] == b"null" {
                self.out.truncate(mark);
            } else {
                first = false;
            }
        }
        self.out.push(b'}');
        Ok(())
    }
}

/// An object's key, borrowed from the input unless it has escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The member of the payload at `path`. `#>` walks the stored containers in place; a chain of
/// `->` would copy every container on the way (all 17 KB of `pull_request` for each of its
/// fields: the projection cost as much as printing the whole payload).
fn at(path: &[&str]) -> String {
    if path.is_empty() {
        "p".to_owned()
    } else {
        format!("(p #> '{{{}}}')", path.join(","))
    }
}

/// The value at `path` reduced to `members` when it is an object, else as it is.
fn object<'a>(path: &[&'a str], members: impl Iterator<Item = &'a (&'static str, Keep)>) -> String {
    let pairs: Vec<String> = members
        .map(|(name, keep)| {
            let mut member = path.to_vec();
            member.push(checked(name));
            format!("'{name}', {}", value(&member, *keep))
        })
        .collect();
    // json_build_object takes at most 100 arguments.
    assert!(pairs.len() <= 50, "too many members under {path:?}");
    let expr = at(path);
    format!(
        "CASE WHEN jsonb_typeof({expr}) = 'object' THEN json_build_object({}) ELSE {expr}::json END",
        pairs.join(", ")
    )
}

fn value(path: &[&str], keep: Keep) -> String {
    match keep {
        Keep::All => at(path),
        Keep::Fields(fields) => object(path, fields.iter()),
    }
}

/// Names are spliced into SQL: only plain identifiers are allowed.
fn checked(name: &str) -> &str {
    assert!(
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
        "not a plain member name: {name:?}"
    );
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_processed_repository_event_has_a_tree_and_the_sql_is_built() {
        let sql = payload_text_sql();
        for event in crate::JobKind::PROCESSED_EVENTS
            .into_iter()
            .filter(|e| !e.starts_with("installation"))
        {
            assert!(sql.contains(&format!("WHEN '{event}' THEN")), "{event}");
        }
        assert!(sql.ends_with("ELSE p::text END"));
    }

    fn projected(event: &str, json: &str) -> serde_json::Value {
        let text = project(event, json).unwrap_or_else(|| panic!("no projection of {json}"));
        serde_json::from_str(&text).expect("the projection is JSON")
    }

    #[test]
    fn keeps_the_tree_and_drops_nulls_at_every_depth() {
        let json = r#"{"action":"closed","number":7,"zen":"x","sender":{"id":1,"login":"a\"b","type":null,"url":"u"},
            "pull_request":{"id":9,"title":"T \u00e9","draft":null,"_links":{"self":1},
              "head":{"ref":"r","sha":"s","repo":{"id":3}},"body":null},
            "repository":{"id":5,"name":"n","full_name":"o/n","owner":{"id":2,"login":"o"},"topics":["a"]}}"#;
        assert_eq!(
            projected("pull_request", json),
            serde_json::json!({
                "action": "closed", "number": 7,
                "sender": {"id": 1, "login": "a\"b"},
                "pull_request": {"id": 9, "title": "T é", "head": {"ref": "r", "sha": "s"}},
                "repository": {"id": 5, "name": "n", "full_name": "o/n", "owner": {"id": 2, "login": "o"}}
            })
        );
        // Kept whole, `null` members still go, `null` array elements stay.
        let push = r#"{"ref":"refs/heads/main","commits":[{"id":"c","message":null,"x":[null,{"y":null}]},null],"after":"c"}"#;
        assert_eq!(
            projected("push", push),
            serde_json::json!({"ref": "refs/heads/main", "after": "c", "commits": [{"id": "c", "x": [null, {}]}, null]})
        );
    }

    #[test]
    fn a_member_of_the_wrong_shape_passes_through_so_parsing_still_fails() {
        let json = r#"{"pull_request":"not an object","repository":[1,{"a":null}]}"#;
        assert_eq!(
            projected("pull_request", json),
            serde_json::json!({"pull_request": "not an object", "repository": [1, {}]})
        );
    }

    #[test]
    fn no_projection_where_postgresql_must_make_it() {
        // No tree: installation events are read whole.
        assert_eq!(project("installation", r#"{"action":"created"}"#), None);
        // Not an object, not JSON, trailing garbage.
        assert_eq!(project("push", "[1]"), None);
        assert_eq!(project("push", r#"{"ref":"#), None);
        assert_eq!(project("push", r#"{"ref":"a"} x"#), None);
        // A kept member twice: jsonb keeps the last one.
        assert_eq!(project("push", r#"{"ref":"a","ref":"b"}"#), None);
        // An ignored member twice is harmless.
        assert_eq!(
            project("push", r#"{"zen":1,"zen":2,"ref":"a"}"#).as_deref(),
            Some(r#"{"ref":"a"}"#)
        );
    }
}
