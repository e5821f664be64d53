//! Integer fields that accept any JSON number with no fractional part (`3.0` is an integer in
//! JSON Schema), rejecting the rest with a clear message.

use serde::{Deserialize, Deserializer, de::Error};

fn integral<E: Error>(v: &serde_json::Value) -> Result<i128, E> {
    match v {
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i as i128)
            } else if let Some(u) = n.as_u64() {
                Ok(u as i128)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e18 {
                    Ok(f as i128)
                } else {
                    Err(E::custom(format!("expected an integer, got {n}")))
                }
            }
        }
        // Query strings carry numbers as text.
        serde_json::Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 1e18)
            .map(|f| f as i128)
            .ok_or_else(|| E::custom(format!("expected an integer, got `{s}`"))),
        other => Err(E::custom(format!("expected an integer, got {other}"))),
    }
}

/// An optional `u32`.
pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => {
            let i = integral::<D::Error>(&v)?;
            u32::try_from(i)
                .map(Some)
                .map_err(|_| D::Error::custom(format!("{i} is out of range (0..{})", u32::MAX)))
        }
    }
}

/// An `i64`.
pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    let i = integral::<D::Error>(&v)?;
    i64::try_from(i).map_err(|_| D::Error::custom(format!("{i} is out of range")))
}
