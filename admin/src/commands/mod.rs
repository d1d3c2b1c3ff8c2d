//! One module per command group.
pub mod broker;
pub mod describe;
pub mod leaders;
pub mod rebalance;
pub mod throttle;

use crate::Output;

/// Prints `value` as JSON (pretty) when asked for JSON; returns whether it did.
pub fn print_json<T: serde::Serialize>(output: Output, value: &T) -> anyhow::Result<bool> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(value)?);
        return Ok(true);
    }
    Ok(false)
}
