//! Which records an answer marks deleted: the stream's two delete signals,
//! `deleted_field` (a flag in the record) and `deleted_when` (a value in the
//! item around it), parsed and applied in one place.
//!
//! Two signals because APIs say it in two ways. Zendesk or HubSpot keep a
//! deleted record listed with a flag in it (`deleted`, `archived`). Stripe's
//! events carry the record at `data.object` and say what happened to it in
//! the event's `type`: a `customer.deleted` event holds the customer as it
//! last was, with no flag of its own, so the signal must be read from the
//! item before `record_path` takes the record out of it.

use crate::error::ConfigError;
use crate::record::{FieldRef, Record};
use serde::Deserialize;
use serde_json::Value;

/// `deleted_when`: an item whose field equals a value is a delete of the
/// record inside it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DeletedWhen {
    /// The item's field, a dot path read from each item of `records_path`
    /// before `record_path` is applied (Stripe's events: `type`).
    pub field: String,
    /// The value that marks a delete, compared exactly: a string, a number
    /// or a boolean (Stripe's events: `"customer.deleted"`).
    #[cfg_attr(
        feature = "schema",
        schemars(extend("type" = ["string", "number", "boolean"]))
    )]
    pub equals: Value,
}

impl DeletedWhen {
    /// Checks the rule; the error's key is relative to `deleted_when`.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.field.is_empty() || self.field.split('.').any(str::is_empty) {
            return Err(ConfigError::new(
                "deleted_when.field",
                format!("`{}` is not a dot path like `type`", self.field),
            ));
        }
        if !matches!(
            self.equals,
            Value::String(_) | Value::Number(_) | Value::Bool(_)
        ) {
            return Err(ConfigError::new(
                "deleted_when.equals",
                format!(
                    "is {}; expected a string, a number or a boolean",
                    self.equals
                ),
            ));
        }
        Ok(())
    }

    /// Whether `item` (the whole item, before `record_path`) marks its
    /// record deleted.
    pub(crate) fn matches(&self, item: &Record) -> bool {
        item.at_path(&self.field)
            .is_some_and(|v| match (v, &self.equals) {
                (FieldRef::Text(s), Value::String(want)) => s == want,
                (FieldRef::Json(got), want) => got == want,
                _ => false,
            })
    }
}

/// Whether `record` is marked deleted at `field` (`deleted_field`): `true`,
/// a non-empty string (a `deleted_at` time) or a non-zero number.
pub(crate) fn flagged(record: &Record, field: &str) -> bool {
    match record.at_path(field) {
        Some(FieldRef::Json(Value::Bool(b))) => *b,
        Some(FieldRef::Json(Value::Number(n))) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(v) => v.as_str().is_some_and(|s| !s.is_empty()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(v: Value) -> Record<'static> {
        let Value::Object(map) = v else { panic!() };
        Record::from(map)
    }

    fn rule(field: &str, equals: Value) -> DeletedWhen {
        DeletedWhen {
            field: field.to_owned(),
            equals,
        }
    }

    #[test]
    fn an_item_matches_on_its_own_field_exactly() {
        let deleted = rule("type", json!("customer.deleted"));
        let event = |t: &str| record(json!({"type": t, "data": {"object": {"id": "cus_1"}}}));
        assert!(deleted.matches(&event("customer.deleted")));
        assert!(!deleted.matches(&event("customer.updated")));
        assert!(!deleted.matches(&event("customer.deleted.x")));
        assert!(!deleted.matches(&record(json!({"data": {}}))));
        let nested = rule("meta.state", json!(3));
        assert!(nested.matches(&record(json!({"meta": {"state": 3}}))));
        assert!(!nested.matches(&record(json!({"meta": {"state": "3"}}))));
    }

    #[test]
    fn a_rule_that_cannot_match_is_refused() {
        let e = rule("", json!("x")).check().unwrap_err().to_string();
        assert!(e.starts_with("deleted_when.field: "), "{e}");
        let e = rule("a..b", json!("x")).check().unwrap_err().to_string();
        assert!(e.starts_with("deleted_when.field: "), "{e}");
        let e = rule("type", json!(null)).check().unwrap_err().to_string();
        assert!(e.starts_with("deleted_when.equals: is null"), "{e}");
        let e = rule("type", json!(["a"])).check().unwrap_err().to_string();
        assert!(e.starts_with("deleted_when.equals: "), "{e}");
        assert!(rule("type", json!(true)).check().is_ok());
    }
}
