//! API answers parsed once, without a map per record.
//!
//! The records of an answer are most of its bytes. Parsed into
//! `serde_json::Value` objects, each record costs a `String` per key and per
//! value and a `BTreeMap`, only to be taken apart into a row right after.
//! Here each record is its fields in the order the API sent them, keys and
//! text values borrowed from the answer (copied only where JSON escapes
//! them), so a row's text goes from the answer into its batch in one copy:
//! 0.25 of the map's parsing time, natively, on the seeds' pages
//! (BENCHMARKS.md, section 9). Other values (numbers, nested objects) are
//! `Value`s, as is the rest of the answer (tokens, counts, links), as
//! strategies read it.

use serde::Deserialize as _;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value as Json};
use std::borrow::Cow;
use std::fmt;

/// A field's value as parsed: text borrowed from the answer (copied only
/// where JSON escaped it), or any other JSON value. Text never sits in
/// `Json`: a string is always `Text`.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<'a> {
    /// A string.
    Text(Cow<'a, str>),
    /// Any other value: null, a boolean, a number, an object or an array.
    Json(Json),
}

impl Field<'_> {
    /// A view of the value.
    pub fn view(&self) -> FieldRef<'_> {
        match self {
            Field::Text(s) => FieldRef::Text(s),
            Field::Json(j) => FieldRef::Json(j),
        }
    }
}

impl From<Json> for Field<'static> {
    fn from(value: Json) -> Self {
        match value {
            Json::String(s) => Field::Text(Cow::Owned(s)),
            other => Field::Json(other),
        }
    }
}

/// A view of a value found in a record ([`Field`] borrowed, or a value nested
/// in one): a field's text, or a JSON value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldRef<'r> {
    /// A string.
    Text(&'r str),
    /// Any other JSON value (a string only when nested in an object).
    Json(&'r Json),
}

impl<'r> FieldRef<'r> {
    /// The value as JSON (a copy).
    pub fn to_json(self) -> Json {
        match self {
            FieldRef::Text(s) => Json::String(s.to_owned()),
            FieldRef::Json(j) => j.clone(),
        }
    }

    /// The text, if the value is a string.
    pub fn as_str(self) -> Option<&'r str> {
        match self {
            FieldRef::Text(s) => Some(s),
            FieldRef::Json(Json::String(s)) => Some(s),
            FieldRef::Json(_) => None,
        }
    }

    /// The JSON value, if it is not a field's text.
    pub fn as_json(self) -> Option<&'r Json> {
        match self {
            FieldRef::Json(j) => Some(j),
            FieldRef::Text(_) => None,
        }
    }

    /// Whether the value is null.
    pub fn is_null(self) -> bool {
        matches!(self, FieldRef::Json(Json::Null))
    }
}

/// One record: its fields in the API's order. A key sent twice keeps both
/// fields; lookups and rows see the last, as a JSON object would.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record<'a> {
    fields: Vec<(Cow<'a, str>, Field<'a>)>,
}

impl<'a> Record<'a> {
    /// The value of field `key`, if the record has it.
    pub fn get(&self, key: &str) -> Option<FieldRef<'_>> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.view())
    }

    /// Takes field `key` out of the record.
    pub fn remove(&mut self, key: &str) -> Option<Field<'a>> {
        let at = self.fields.iter().rposition(|(k, _)| k == key)?;
        Some(self.fields.remove(at).1)
    }

    /// The value at the dot path `path` (`properties.updated`). A key that
    /// itself holds a dot is found too, before the path is split.
    pub fn at_path(&self, path: &str) -> Option<FieldRef<'_>> {
        if let Some(v) = self.get(path) {
            return Some(v);
        }
        let (first, rest) = path.split_once('.')?;
        match self.get(first)? {
            FieldRef::Json(j) => crate::rows::at_path(j, rest).map(FieldRef::Json),
            FieldRef::Text(_) => None,
        }
    }

    /// The field names, in order (a repeated key twice).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| k.as_ref())
    }

    /// The fields, in order.
    pub fn into_fields(self) -> impl Iterator<Item = (Cow<'a, str>, Field<'a>)> {
        self.fields.into_iter()
    }

    /// The record as a JSON object (the last of a repeated key).
    pub fn to_json(&self) -> Json {
        Json::Object(
            self.fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.view().to_json()))
                .collect(),
        )
    }
}

impl From<Map<String, Json>> for Record<'static> {
    fn from(map: Map<String, Json>) -> Self {
        Record {
            fields: map
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k), Field::from(v)))
                .collect(),
        }
    }
}

/// An item of the records array: a record, or what stood there instead.
#[derive(Debug)]
pub enum Item<'a> {
    /// A JSON object.
    Record(Record<'a>),
    /// Anything else.
    Other(Json),
}

/// What stood at the records path of an answer.
#[derive(Debug)]
pub enum Records<'a> {
    /// An array, item by item.
    List(Vec<Item<'a>>),
    /// Something else, kept for the error message.
    Other(Json),
}

/// An answer: its records (`None` if the path was not there) and the rest,
/// with `null` where the records were.
#[derive(Debug)]
pub struct Answer<'a> {
    pub body: Json,
    pub records: Option<Records<'a>>,
}

impl<'a> Answer<'a> {
    /// Parses `body`, taking the records out at the object path `path`
    /// (the whole answer for an empty path).
    pub fn parse(body: &'a [u8], path: &[String]) -> Result<Answer<'a>, serde_json::Error> {
        // One check of the whole answer, then no check per string: parsing
        // from bytes validates every string on its own, which showed in the
        // wasm profile (a call per string, on 4-byte words).
        let text = std::str::from_utf8(body).map_err(|e| {
            <serde_json::Error as de::Error>::custom(format_args!(
                "the answer is not UTF-8 (at byte {})",
                e.valid_up_to()
            ))
        })?;
        let mut records = None;
        let mut de = serde_json::Deserializer::from_str(text);
        let body = AtPath {
            path,
            records: &mut records,
        }
        .deserialize(&mut de)?;
        de.end()?;
        Ok(Answer { body, records })
    }
}

/// The `visit_*` methods of a visitor that keeps booleans, numbers and null
/// as JSON, wrapped by `$wrap`.
macro_rules! json_non_strings {
    ($wrap:expr) => {
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok($wrap(Json::Bool(v)))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok($wrap(Json::from(v)))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok($wrap(Json::from(v)))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok($wrap(
                serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number),
            ))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($wrap(Json::Null))
        }
    };
}

/// The scalar `visit_*` methods of a visitor that keeps scalars as JSON,
/// wrapped by `$wrap`.
macro_rules! json_scalars {
    ($wrap:expr) => {
        json_non_strings!($wrap);
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok($wrap(Json::String(v.to_owned())))
        }
    };
}

/// A key, borrowed from the answer where it needs no unescaping.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// A field's value: text borrowed where it can be, anything else as JSON.
struct FieldSeed;

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Field<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Field<'de>, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Field::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Field::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Field::Text(Cow::Owned(v)))
            }
            json_non_strings!(Field::Json);
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Json::deserialize(de::value::MapAccessDeserializer::new(map)).map(Field::Json)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Json::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Field::Json)
            }
        }
        d.deserialize_any(FieldVisitor)
    }
}

/// A value that is a record where it is an object.
struct ItemSeed;

impl<'de> DeserializeSeed<'de> for ItemSeed {
    type Value = Item<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Item<'de>, D::Error> {
        d.deserialize_any(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item<'de>, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(key) = map.next_key_seed(Key)? {
            fields.push((key, map.next_value_seed(FieldSeed)?));
        }
        Ok(Item::Record(Record { fields }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item<'de>, A::Error> {
        let json = Json::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Item::Other(json))
    }

    json_scalars!(Item::Other);
}

/// The records array: items, or what stood there instead.
struct RecordsSeed;

impl<'de> DeserializeSeed<'de> for RecordsSeed {
    type Value = Records<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Records<'de>, D::Error> {
        struct RecordsVisitor;
        impl<'de> Visitor<'de> for RecordsVisitor {
            type Value = Records<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of records")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Records<'de>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(64));
                while let Some(item) = seq.next_element_seed(ItemSeed)? {
                    items.push(item);
                }
                Ok(Records::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Records<'de>, A::Error> {
                let json = Json::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Records::Other(json))
            }
            json_scalars!(Records::Other);
        }
        d.deserialize_any(RecordsVisitor)
    }
}

/// A value on the way to the records: an object whose key `path[0]` leads
/// on; the records are written to `records`, `null` stays in their place.
struct AtPath<'p, 'r, 'de> {
    path: &'p [String],
    records: &'r mut Option<Records<'de>>,
}

impl<'de> DeserializeSeed<'de> for AtPath<'_, '_, 'de> {
    type Value = Json;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        match self.path.split_first() {
            None => {
                *self.records = Some(RecordsSeed.deserialize(d)?);
                Ok(Json::Null)
            }
            Some(_) => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for AtPath<'_, '_, 'de> {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let (first, rest) = self.path.split_first().expect("a path");
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = if key == *first {
                map.next_value_seed(AtPath {
                    path: rest,
                    records: &mut *self.records,
                })?
            } else {
                map.next_value::<Json>()?
            };
            out.insert(key, value);
        }
        Ok(Json::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Json, A::Error> {
        Json::deserialize(de::value::SeqAccessDeserializer::new(seq))
    }
    json_scalars!(std::convert::identity);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(p: &str) -> Vec<String> {
        p.split('.')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn records_come_out_and_the_rest_stays() {
        let body =
            br#"{"data": [{"id": "1", "a\"b": 2, "n": {"x": [1]}}, 7], "next": "t", "count": 2}"#;
        let a = Answer::parse(body, &path("data")).unwrap();
        assert_eq!(a.body, json!({"data": null, "next": "t", "count": 2}));
        let Some(Records::List(items)) = a.records else {
            panic!("a list")
        };
        let Item::Record(r) = &items[0] else {
            panic!("a record")
        };
        assert_eq!(r.keys().collect::<Vec<_>>(), ["id", "a\"b", "n"]);
        assert_eq!(r.at_path("n.x"), Some(FieldRef::Json(&json!([1]))));
        assert_eq!(r.get("id"), Some(FieldRef::Text("1")));
        assert!(
            matches!(r.fields[0].1, Field::Text(Cow::Borrowed("1"))),
            "borrowed"
        );
        assert_eq!(r.to_json(), json!({"id": "1", "a\"b": 2, "n": {"x": [1]}}));
        assert!(matches!(&items[1], Item::Other(j) if *j == json!(7)));
    }

    #[test]
    fn nested_empty_and_missing_paths() {
        let body = br#"{"results": {"items": [{"id": 1}]}, "links": {"next": null}}"#;
        let a = Answer::parse(body, &path("results.items")).unwrap();
        assert_eq!(a.body["results"], json!({"items": null}));
        assert!(matches!(a.records, Some(Records::List(ref l)) if l.len() == 1));
        let a = Answer::parse(br#"[{"id": 1}, {"id": 2}]"#, &[]).unwrap();
        assert_eq!(a.body, Json::Null);
        assert!(matches!(a.records, Some(Records::List(ref l)) if l.len() == 2));
        let a = Answer::parse(br#"{"other": []}"#, &path("data")).unwrap();
        assert!(a.records.is_none());
        let a = Answer::parse(br#"{"data": {"id": 1}}"#, &path("data")).unwrap();
        assert!(matches!(a.records, Some(Records::Other(ref j)) if *j == json!({"id": 1})));
        let a = Answer::parse(br#"{"data": "x"}"#, &path("data.items")).unwrap();
        assert!(a.records.is_none());
        assert!(Answer::parse(br#"{"data": [}"#, &path("data")).is_err());
        assert!(Answer::parse(br#"{"data": []} trailing"#, &path("data")).is_err());
        let e = Answer::parse(b"{\"data\": [\"\xff\"]}", &path("data")).unwrap_err();
        assert_eq!(e.to_string(), "the answer is not UTF-8 (at byte 11)");
    }

    #[test]
    fn a_repeated_key_reads_as_its_last() {
        let a = Answer::parse(br#"[{"id": 1, "id": 2}]"#, &[]).unwrap();
        let Some(Records::List(items)) = a.records else {
            panic!()
        };
        let Item::Record(mut r) = items.into_iter().next().unwrap() else {
            panic!()
        };
        assert_eq!(r.get("id"), Some(FieldRef::Json(&json!(2))));
        assert_eq!(r.remove("id"), Some(Field::Json(json!(2))));
        assert_eq!(r.get("id"), Some(FieldRef::Json(&json!(1))));
    }
}
