//! `timex`: the kernel clock's NTP discipline state from adjtimex(2) (read-only, `modes` 0):
//! sync status, offset, frequency adjustment, error bounds, PPS counters and the TAI offset,
//! with node_exporter 1.5's names and unit conversions. Not a file: the values are the
//! running kernel's whatever `--path.procfs` says, as in node_exporter.
use super::{CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

pub struct TimexCollector;

/// The adjtimex(2) result, as the kernel gives it (units per field as in `struct timex`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timex {
    /// The return value: the clock state (`TIME_ERROR` = 5: not synchronised).
    pub state: i32,
    pub status: i32,
    pub offset: i64,
    pub freq: i64,
    pub maxerror: i64,
    pub esterror: i64,
    pub constant: i64,
    pub tick: i64,
    pub ppsfreq: i64,
    pub jitter: i64,
    pub shift: i32,
    pub stabil: i64,
    pub jitcnt: i64,
    pub calcnt: i64,
    pub errcnt: i64,
    pub stbcnt: i64,
    pub tai: i32,
}

const TIME_ERROR: i32 = 5;
/// `status` bit: offset and jitter are in nanoseconds rather than microseconds.
const STA_NANO: i32 = 0x2000;
/// Scaled ppm (`freq`, `ppsfreq`, `stabil`) to a ratio: ppm with a 16-bit fraction.
const PPM16FRAC: f64 = 1_000_000.0 * 65536.0;

impl Collector for TimexCollector {
    fn name(&self) -> &'static str {
        "timex"
    }

    fn update(&self, _paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        render(&read_adjtimex()?, out);
        Ok(())
    }
}

fn read_adjtimex() -> Result<Timex, CollectError> {
    // SAFETY: adjtimex with modes = 0 only reads the kernel's state into the zeroed struct
    // we own; it has no other memory effects.
    let (state, t) = unsafe {
        let mut t: libc::timex = std::mem::zeroed();
        (libc::adjtimex(&mut t), t)
    };
    if state < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            return Err(CollectError::NoData(format!("adjtimex: {e}")));
        }
        return Err(CollectError::parse("adjtimex", e.to_string()));
    }
    Ok(Timex {
        state,
        status: t.status,
        offset: t.offset as i64,
        freq: t.freq as i64,
        maxerror: t.maxerror as i64,
        esterror: t.esterror as i64,
        constant: t.constant as i64,
        tick: t.tick as i64,
        ppsfreq: t.ppsfreq as i64,
        jitter: t.jitter as i64,
        shift: t.shift,
        stabil: t.stabil as i64,
        jitcnt: t.jitcnt as i64,
        calcnt: t.calcnt as i64,
        errcnt: t.errcnt as i64,
        stbcnt: t.stbcnt as i64,
        tai: t.tai,
    })
}

/// The families, in node_exporter's order.
pub fn render(t: &Timex, out: &mut MetricWriter) {
    let divisor = if t.status & STA_NANO != 0 { 1e9 } else { 1e6 };
    let g = MetricType::Gauge;
    let c = MetricType::Counter;
    let families: [(&str, &str, MetricType, f64); 17] = [
        ("sync_status", "Is clock synchronized to a reliable server (1 = yes, 0 = no).", g, if t.state == TIME_ERROR { 0.0 } else { 1.0 }),
        ("offset_seconds", "Time offset in between local system and reference clock.", g, t.offset as f64 / divisor),
        ("frequency_adjustment_ratio", "Local clock frequency adjustment.", g, 1.0 + t.freq as f64 / PPM16FRAC),
        ("maxerror_seconds", "Maximum error in seconds.", g, t.maxerror as f64 / 1e6),
        ("estimated_error_seconds", "Estimated error in seconds.", g, t.esterror as f64 / 1e6),
        ("status", "Value of the status array bits.", g, t.status as f64),
        ("loop_time_constant", "Phase-locked loop time constant.", g, t.constant as f64),
        ("tick_seconds", "Seconds between clock ticks.", g, t.tick as f64 / 1e6),
        ("pps_frequency_hertz", "Pulse per second frequency.", g, t.ppsfreq as f64 / PPM16FRAC),
        ("pps_jitter_seconds", "Pulse per second jitter.", g, t.jitter as f64 / divisor),
        ("pps_shift_seconds", "Pulse per second interval duration.", g, t.shift as f64),
        ("pps_stability_hertz", "Pulse per second stability, average of recent frequency changes.", g, t.stabil as f64 / PPM16FRAC),
        ("pps_jitter_total", "Pulse per second count of jitter limit exceeded events.", c, t.jitcnt as f64),
        ("pps_calibration_total", "Pulse per second count of calibration intervals.", c, t.calcnt as f64),
        ("pps_error_total", "Pulse per second count of calibration errors.", c, t.errcnt as f64),
        ("pps_stability_exceeded_total", "Pulse per second count of stability limit exceeded events.", c, t.stbcnt as f64),
        ("tai_offset_seconds", "International Atomic Time (TAI) offset.", g, t.tai as f64),
    ];
    for (suffix, help, kind, v) in families {
        out.single(&format!("node_timex_{suffix}"), help, kind, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_the_status_bits() {
        let t = Timex { state: 0, status: STA_NANO, offset: -1_500_000, freq: 65536 * 10, maxerror: 16_000, tick: 10_000, tai: 37, ..Default::default() };
        let mut w = MetricWriter::new();
        render(&t, &mut w);
        let text = w.into_string();
        assert!(text.contains("node_timex_sync_status 1\n"), "{text}");
        assert!(text.contains("node_timex_offset_seconds -0.0015\n"), "nanoseconds with STA_NANO: {text}");
        assert!(text.contains("node_timex_frequency_adjustment_ratio 1.00001\n"), "{text}");
        assert!(text.contains("node_timex_maxerror_seconds 0.016\n"), "{text}");
        assert!(text.contains("node_timex_tick_seconds 0.01\n"), "{text}");
        assert!(text.contains("node_timex_tai_offset_seconds 37\n"), "{text}");
        assert!(text.contains("# TYPE node_timex_pps_calibration_total counter\n"), "{text}");

        let mut w = MetricWriter::new();
        render(&Timex { state: TIME_ERROR, offset: -1500, ..Default::default() }, &mut w);
        let text = w.into_string();
        assert!(text.contains("node_timex_sync_status 0\n"), "{text}");
        assert!(text.contains("node_timex_offset_seconds -0.0015\n"), "microseconds without STA_NANO: {text}");
    }

    #[test]
    fn the_running_kernel_answers() {
        let t = read_adjtimex().unwrap();
        assert!(t.tick > 0, "{t:?}");
    }
}
