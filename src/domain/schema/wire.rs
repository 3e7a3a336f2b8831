//! BigQuery's JSON form of a table (`tables.insert` body, `tables.get` answer) and its
//! conversion to and from [`TableSchema`].
//!
//! Shapes: <https://cloud.google.com/bigquery/docs/reference/rest/v2/tables#Table>
//! (`schema`, `timePartitioning`, `rangePartitioning`, `clustering`,
//! `requirePartitionFilter`) and `TableFieldSchema` (`name`, `type`, `mode`, `fields`,
//! `precision`, `scale`, `maxLength` — int64 values, which the API writes as strings).

use serde::{Deserialize, Serialize};

use super::{Field, FieldType, Mode, PartitionKind, Partitioning, TableSchema};

/// An int64 the API writes as a string (`"10"`), read from a string or a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Int64Text {
    Text(String),
    Number(i64),
}

impl Int64Text {
    fn value(&self) -> Result<i64, String> {
        match self {
            Self::Number(n) => Ok(*n),
            Self::Text(t) => t
                .trim()
                .parse()
                .map_err(|_| format!("{t:?} is not an integer")),
        }
    }
}

/// `TableFieldSchema`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FieldResource {
    name: String,
    #[serde(rename = "type")]
    field_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fields: Vec<Field>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    precision: Option<Int64TextOut>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scale: Option<Int64TextOut>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_length: Option<Int64TextOut>,
}

/// An int64 field read from either spelling and written as the API writes it (a string).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(try_from = "Int64Text", into = "String")]
struct Int64TextOut(i64);

impl TryFrom<Int64Text> for Int64TextOut {
    type Error = String;
    fn try_from(v: Int64Text) -> Result<Self, String> {
        v.value().map(Self)
    }
}

impl From<Int64TextOut> for String {
    fn from(v: Int64TextOut) -> Self {
        v.0.to_string()
    }
}

impl TryFrom<FieldResource> for Field {
    type Error = String;
    fn try_from(r: FieldResource) -> Result<Self, String> {
        let mode = match r.mode.as_deref().map(str::to_ascii_uppercase).as_deref() {
            None | Some("NULLABLE") => Mode::Nullable,
            Some("REQUIRED") => Mode::Required,
            Some("REPEATED") => Mode::Repeated,
            Some(other) => {
                return Err(format!(
                    "field `{}` has mode {other}; BigQuery knows NULLABLE, REQUIRED and REPEATED",
                    r.name
                ))
            }
        };
        let small = |v: Option<Int64TextOut>, what: &str| -> Result<Option<u32>, String> {
            v.map(|v| {
                u32::try_from(v.0)
                    .map_err(|_| format!("field `{}` has {what} {}, out of range", r.name, v.0))
            })
            .transpose()
        };
        Ok(Self {
            precision: small(r.precision, "precision")?,
            scale: small(r.scale, "scale")?,
            max_length: r
                .max_length
                .map(|l| {
                    u64::try_from(l.0)
                        .map_err(|_| format!("field `{}` has a negative maxLength", r.name))
                })
                .transpose()?,
            field_type: FieldType::parse(&r.field_type),
            mode,
            fields: r.fields,
            name: r.name,
        })
    }
}

impl From<Field> for FieldResource {
    fn from(f: Field) -> Self {
        Self {
            field_type: f.field_type.api_name().to_owned(),
            mode: Some(
                match f.mode {
                    Mode::Nullable => "NULLABLE",
                    Mode::Required => "REQUIRED",
                    Mode::Repeated => "REPEATED",
                }
                .to_owned(),
            ),
            precision: f.precision.map(|p| Int64TextOut(p.into())),
            scale: f.scale.map(|s| Int64TextOut(s.into())),
            max_length: f
                .max_length
                .map(|l| Int64TextOut(i64::try_from(l).unwrap_or(i64::MAX))),
            fields: f.fields,
            name: f.name,
        }
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        FieldResource::deserialize(d)?
            .try_into()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Field {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        FieldResource::from(self.clone()).serialize(s)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SchemaResource {
    #[serde(default)]
    fields: Vec<Field>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimePartitioningResource {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    require_partition_filter: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RangeResource {
    start: Int64TextOut,
    end: Int64TextOut,
    interval: Int64TextOut,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RangePartitioningResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    range: RangeResource,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ClusteringResource {
    #[serde(default)]
    fields: Vec<String>,
}

/// The parts of BigQuery's `Table` resource a [`TableSchema`] holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TableResource {
    #[serde(default)]
    schema: SchemaResource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time_partitioning: Option<TimePartitioningResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    range_partitioning: Option<RangePartitioningResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clustering: Option<ClusteringResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    require_partition_filter: Option<bool>,
}

impl TryFrom<TableResource> for TableSchema {
    type Error = String;
    fn try_from(r: TableResource) -> Result<Self, String> {
        // `requirePartitionFilter` moved from `timePartitioning` to the table; either counts.
        let required = r.require_partition_filter.unwrap_or(false);
        let partitioning = match (r.time_partitioning, r.range_partitioning) {
            (Some(_), Some(_)) => {
                return Err(
                    "a table has either timePartitioning or rangePartitioning, not both".into(),
                )
            }
            (Some(t), None) => Some(Partitioning {
                kind: PartitionKind::Time(t.kind.to_ascii_uppercase()),
                field: t.field,
                require_partition_filter: required || t.require_partition_filter.unwrap_or(false),
            }),
            (None, Some(p)) => Some(Partitioning {
                kind: PartitionKind::IntegerRange {
                    start: p.range.start.0,
                    end: p.range.end.0,
                    interval: p.range.interval.0,
                },
                field: p.field,
                require_partition_filter: required,
            }),
            (None, None) => None,
        };
        Ok(Self {
            fields: r.schema.fields,
            partitioning,
            clustering: r.clustering.map(|c| c.fields).unwrap_or_default(),
        })
    }
}

impl From<TableSchema> for TableResource {
    fn from(s: TableSchema) -> Self {
        let mut r = Self {
            schema: SchemaResource { fields: s.fields },
            clustering: (!s.clustering.is_empty()).then_some(ClusteringResource {
                fields: s.clustering,
            }),
            ..Self::default()
        };
        if let Some(p) = s.partitioning {
            r.require_partition_filter = Some(p.require_partition_filter);
            match p.kind {
                PartitionKind::Time(kind) => {
                    r.time_partitioning = Some(TimePartitioningResource {
                        kind,
                        field: p.field,
                        require_partition_filter: None,
                    });
                }
                PartitionKind::IntegerRange {
                    start,
                    end,
                    interval,
                } => {
                    r.range_partitioning = Some(RangePartitioningResource {
                        field: p.field,
                        range: RangeResource {
                            start: Int64TextOut(start),
                            end: Int64TextOut(end),
                            interval: Int64TextOut(interval),
                        },
                    });
                }
            }
        }
        r
    }
}
