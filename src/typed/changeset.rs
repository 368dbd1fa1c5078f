//! Field-level changesets: which fields of a struct value changed between
//! two versions, with the old and new value of each (SQLAlchemy-Continuum's
//! `version.changeset`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::value::{Value, ValueError};

/// One field that differs between two versions of a value.
///
/// `old` is `None` when the field did not exist before (the key was
/// inserted), `new` is `None` when it no longer exists (the key was
/// deleted). For values that are not structs or maps, the whole value is
/// one field named `""`.
///
/// ```
/// use timecask::typed::{FieldChange, Value};
/// let change = FieldChange {
///     field: "name".into(),
///     old: Some(Value::String("Alice".into())),
///     new: Some(Value::String("Bob".into())),
/// };
/// assert_eq!(change.to_string(), "name: Alice -> Bob");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldChange {
    /// The struct field (or map key) that changed; `""` for a whole value
    /// that is not a struct.
    pub field: String,
    /// Its value before; `None` if it had none.
    pub old: Option<Value>,
    /// Its value after; `None` if it has none.
    pub new: Option<Value>,
}

/// `field: old -> new`, with `(none)` for a missing side and `(value)` as
/// the field name of a non-struct value.
impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |v: &Option<Value>| v.as_ref().map_or("(none)".to_string(), Value::to_string);
        let field = if self.field.is_empty() {
            "(value)"
        } else {
            &self.field
        };
        write!(f, "{field}: {} -> {}", side(&self.old), side(&self.new))
    }
}

/// The fields that differ between `old` and `new` (`None`: no value, as
/// before an insert or after a delete), in declaration order, new fields
/// last. Equal values give an empty changeset.
///
/// Fails only if a `Serialize` implementation fails.
///
/// ```
/// use timecask::typed::changeset;
/// #[derive(serde::Serialize)]
/// struct User { name: String, age: u32 }
/// let alice = User { name: "Alice".into(), age: 30 };
/// let bob = User { name: "Bob".into(), age: 30 };
/// let changes = changeset(Some(&alice), Some(&bob))?;
/// let shown: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
/// assert_eq!(shown, ["name: Alice -> Bob"]);
/// assert_eq!(changeset(None, Some(&alice))?.len(), 2); // an insert sets every field
/// # Ok::<(), timecask::typed::ValueError>(())
/// ```
pub fn changeset<V: Serialize + ?Sized>(
    old: Option<&V>,
    new: Option<&V>,
) -> Result<Vec<FieldChange>, ValueError> {
    let old = old.map(Value::from_serialize).transpose()?;
    let new = new.map(Value::from_serialize).transpose()?;
    Ok(changeset_values(old.as_ref(), new.as_ref()))
}

/// [`changeset`] of two value trees, for values that are not Rust types,
/// such as JSON documents (`serde_json::Value` serializes into a
/// [`Value`]).
///
/// ```
/// use timecask::typed::{changeset_values, Value};
/// let old = Value::from_serialize(&serde_json::json!({"name": "Alice", "age": 30})).unwrap();
/// let new = Value::from_serialize(&serde_json::json!({"name": "Alice", "age": 31})).unwrap();
/// let changes = changeset_values(Some(&old), Some(&new));
/// assert_eq!(changes[0].to_string(), "age: 30 -> 31");
/// ```
pub fn changeset_values(old: Option<&Value>, new: Option<&Value>) -> Vec<FieldChange> {
    let old_fields = fields(old);
    let new_fields = fields(new);
    let new_by_name: BTreeMap<&str, &Value> = new_fields.iter().copied().collect();
    let old_names: BTreeSet<&str> = old_fields.iter().map(|(n, _)| *n).collect();
    let mut changes = Vec::new();
    for (name, old_value) in &old_fields {
        let new_value = new_by_name.get(name).copied();
        if new_value != Some(*old_value) {
            changes.push(FieldChange {
                field: name.to_string(),
                old: Some((*old_value).clone()),
                new: new_value.cloned(),
            });
        }
    }
    for (name, new_value) in &new_fields {
        if !old_names.contains(name) {
            changes.push(FieldChange {
                field: name.to_string(),
                old: None,
                new: Some((*new_value).clone()),
            });
        }
    }
    changes
}

/// The named fields of a value: the entries of a map whose keys are all
/// strings (every struct), else the whole value under the name `""`.
fn fields(value: Option<&Value>) -> Vec<(&str, &Value)> {
    match value {
        None => Vec::new(),
        Some(Value::Map(entries)) if entries.iter().all(|(k, _)| matches!(k, Value::String(_))) => {
            entries
                .iter()
                .filter_map(|(k, v)| match k {
                    Value::String(name) => Some((name.as_str(), v)),
                    _ => None,
                })
                .collect()
        }
        Some(other) => vec![("", other)],
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    struct User {
        name: String,
        email: Option<String>,
        age: u32,
    }

    fn user(name: &str, email: Option<&str>, age: u32) -> User {
        User {
            name: name.into(),
            email: email.map(Into::into),
            age,
        }
    }

    #[track_caller]
    fn check<V: Serialize>(old: Option<&V>, new: Option<&V>, want: &[&str]) {
        let got: Vec<String> = changeset(old, new)
            .expect("serialize")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn changesets() {
        let alice = user("Alice", Some("a@x"), 30);
        check(Some(&alice), Some(&alice), &[]);
        check(
            Some(&alice),
            Some(&user("Bob", None, 31)),
            &["name: Alice -> Bob", "email: a@x -> null", "age: 30 -> 31"],
        );
        check(
            None,
            Some(&alice),
            &[
                "name: (none) -> Alice",
                "email: (none) -> a@x",
                "age: (none) -> 30",
            ],
        );
        check(
            Some(&alice),
            None,
            &[
                "name: Alice -> (none)",
                "email: a@x -> (none)",
                "age: 30 -> (none)",
            ],
        );
        check::<User>(None, None, &[]);
        check(Some(&5u8), Some(&6u8), &["(value): 5 -> 6"]);
        check(
            Some(&vec![1]),
            Some(&vec![1, 2]),
            &["(value): [1] -> [1, 2]"],
        );
        let before = BTreeMap::from([("a", 1), ("b", 2)]);
        let after = BTreeMap::from([("b", 2), ("c", 3)]);
        check(
            Some(&before),
            Some(&after),
            &["a: 1 -> (none)", "c: (none) -> 3"],
        );
    }
}
