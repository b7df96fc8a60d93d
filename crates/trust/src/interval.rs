//! Intervals: the central range a value lies in with a stated probability
//! ([`INTERVAL_LEVEL`] for what scores report), beside its confidence (`docs/scoring.md`, "Intervals").
//!
//! A factor's value is (or, for composite factors, is read as) a Beta posterior: the Beta with
//! the factor's mean and standard error (for a Beta channel that is its posterior exactly:
//! `sd = sqrt(v(1 − v)/(n + 1))` gives back `n = α + β`). Its interval is the Beta's central
//! quantiles, computed from the regularised incomplete beta function by Newton's method in a
//! bracket (a few evaluations a quantile, where bisection took sixty): on demand,
//! so scoring pays nothing for it. A score's interval is the normal approximation `score ± z ·
//! noise`, clipped to 0–100, as its noise propagates the factors' variances through the
//! weights.

/// The probability the intervals scores report hold; why this level: `docs/scoring.md`,
/// "Intervals".
pub const INTERVAL_LEVEL: f64 = 0.8;

/// The standard normal quantile for a central interval of `level` (at most 0.999): z with
/// Φ(z) = (1 + level)/2, by bisection. For 0.8 it is 1.2816.
pub fn z_for(level: f64) -> f64 {
    let target = level.clamp(0.0, 0.999);
    let (mut lo, mut hi) = (0.0f64, 4.0f64);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if erf(mid / std::f64::consts::SQRT_2) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// erf(x) for 0 ≤ x ≤ 2.9 (what [`z_for`] asks), by its Maclaurin series: its terms grow to
/// at most about e^(x²) ≈ 4,500 before they shrink, so the sum keeps about 12 digits.
fn erf(x: f64) -> f64 {
    let (mut term, mut sum) = (x, x);
    for n in 1..200 {
        let n = f64::from(n);
        term *= -x * x / n;
        let add = term / (2.0 * n + 1.0);
        sum += add;
        if add.abs() < 1e-17 {
            break;
        }
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, nine terms; relative error below 1e-13 in this range).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b).
fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// The regularised incomplete beta function I_x(a, b), by its continued fraction (modified
/// Lentz), on the side where it converges fast; `ln_b` is ln B(a, b).
fn incomplete_beta(x: f64, a: f64, b: f64, ln_b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = a * x.ln() + b * (1.0 - x).ln() - ln_b;
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * fraction(x, a, b) / a
    } else {
        1.0 - ln_front.exp() * fraction(1.0 - x, b, a) / b
    }
}

fn fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    d = 1.0 / if d.abs() < TINY { TINY } else { d };
    let mut h = d;
    for m in 1..300 {
        let m = f64::from(m);
        let even = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        for coef in [even, -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0))] {
            d = 1.0 + coef * d;
            d = 1.0 / if d.abs() < TINY { TINY } else { d };
            c = 1.0 + coef / c;
            if c.abs() < TINY {
                c = TINY;
            }
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-14 {
            break;
        }
    }
    h
}

/// The `p` quantile of Beta(a, b): x with I_x(a, b) = p, by Newton's method on I_x (its
/// derivative is the Beta's density) inside a bracket that every step narrows, bisecting
/// whenever a Newton step would leave it; from `start` (the normal approximation's quantile;
/// the mean when it is outside 0–1), a few steps reach full precision where plain bisection
/// took sixty evaluations.
fn beta_quantile(p: f64, a: f64, b: f64, start: f64) -> f64 {
    let ln_b = ln_beta(a, b);
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    let mut x = if start > 0.0 && start < 1.0 { start } else { a / (a + b) };
    for _ in 0..100 {
        let f = incomplete_beta(x, a, b, ln_b) - p;
        if f < 0.0 {
            lo = x;
        } else {
            hi = x;
        }
        let density = ((a - 1.0) * x.ln() + (b - 1.0) * (1.0 - x).ln() - ln_b).exp();
        let newton = x - f / density;
        // I_x itself holds about 14 digits: a step below 1e-12 of x is noise.
        if f == 0.0 || (newton.is_finite() && (newton - x).abs() <= 1e-12 * x) {
            return if newton.is_finite() { newton } else { x };
        }
        let next = if newton.is_finite() && newton > lo && newton < hi { newton } else { 0.5 * (lo + hi) };
        if hi - lo <= 1e-12 * hi {
            return next;
        }
        x = next;
    }
    x
}

/// The central `level` interval of a value in 0–1 with mean `v` and standard error `sd`, read
/// as the Beta with those moments. A value with no spread (sd 0, or at 0 or 1) is its own
/// interval; a spread too wide for any Beta is the whole range.
pub fn beta_interval(v: f64, sd: f64, level: f64) -> [f64; 2] {
    let v = if v.is_finite() { v.clamp(0.0, 1.0) } else { 0.5 };
    let var = if sd.is_finite() { sd * sd } else { 0.0 };
    if var <= 1e-18 || v <= 0.0 || v >= 1.0 {
        return [v, v];
    }
    let n = v * (1.0 - v) / var - 1.0;
    if n <= 0.0 {
        return [0.0, 1.0];
    }
    let (a, b) = (v * n, (1.0 - v) * n);
    let level = level.clamp(0.0, 1.0);
    let tail = (1.0 - level) / 2.0;
    let z = if level == INTERVAL_LEVEL { Z_80 } else { z_for(level) };
    let sd = var.sqrt();
    [beta_quantile(tail, a, b, v - z * sd), beta_quantile(1.0 - tail, a, b, v + z * sd)]
}

/// A score's central `level` interval: `score ± z · noise`, clipped to 0–100.
pub fn score_interval(score: f64, noise: f64, level: f64) -> [f64; 2] {
    score_interval_z(score, noise, z_for(level))
}

/// [`score_interval`] with z given.
pub(crate) fn score_interval_z(score: f64, noise: f64, z: f64) -> [f64; 2] {
    let half = if noise.is_finite() { z * noise.max(0.0) } else { 100.0 };
    [(score - half).clamp(0.0, 100.0), (score + half).clamp(0.0, 100.0)]
}

/// z for [`INTERVAL_LEVEL`], computed once.
pub(crate) const Z_80: f64 = 1.281_551_565_544_600_5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_normal_quantile_is_right() {
        assert!((z_for(INTERVAL_LEVEL) - Z_80).abs() < 1e-6, "{}", z_for(INTERVAL_LEVEL));
        assert!((z_for(0.95) - 1.959_963_984_540_054).abs() < 1e-6);
    }

    #[test]
    fn beta_quantiles_match_closed_forms() {
        // Beta(1, 1) is uniform: each quantile equals its probability.
        let [lo, hi] = beta_interval(0.5, (1.0f64 / 12.0).sqrt(), 0.8);
        assert!((lo - 0.1).abs() < 1e-9 && (hi - 0.9).abs() < 1e-9, "{lo} {hi}");
        // Beta(2, 1) has F(x) = x², so its p quantile is √p.
        let (v, sd) = (2.0 / 3.0, (2.0f64 / (9.0 * 4.0)).sqrt());
        let [lo, hi] = beta_interval(v, sd, 0.8);
        assert!((lo - 0.1f64.sqrt()).abs() < 1e-9 && (hi - 0.9f64.sqrt()).abs() < 1e-9, "{lo} {hi}");
        // ln Γ at known points.
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }

    /// The quantile by plain bisection, as it was computed before Newton's steps.
    fn bisected(p: f64, a: f64, b: f64) -> f64 {
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if incomplete_beta(mid, a, b, ln_beta(a, b)) < p {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }

    #[test]
    fn newton_quantiles_equal_bisected_ones() {
        for a in [0.05, 0.3, 1.0, 2.5, 17.0, 400.0, 9_000.0] {
            for b in [0.05, 0.7, 1.0, 3.0, 55.0, 2_000.0] {
                for p in [1e-6, 0.01, 0.1, 0.5, 0.9, 0.99, 1.0 - 1e-6] {
                    let mean = a / (a + b);
                    let (newton, bisection) = (beta_quantile(p, a, b, mean), bisected(p, a, b));
                    assert!((newton - bisection).abs() < 1e-9, "Beta({a}, {b}) at {p}: {newton} against {bisection}");
                }
            }
        }
    }

    #[test]
    fn a_band_is_tentative_when_its_interval_straddles_an_edge() {
        use crate::{Band, Bands, Composed, Score};
        let at = |score: f64, noise: f64, confidence: f64| {
            Score::new(Composed { score, confidence, noise, factors: Vec::new() }, &Bands::default(), "m/1".into())
        };
        let near = at(77.0, 3.0, 0.8);
        assert_eq!((near.band, near.tentative), (Band::Green, true), "{:?}", near.interval);
        assert!((near.interval[0] - (77.0 - 3.0 * Z_80)).abs() < 1e-12);
        let clear = at(90.0, 3.0, 0.8);
        assert_eq!((clear.band, clear.tentative), (Band::Green, false));
        // Across the yellow edge too; grey is never tentative.
        assert!(at(51.0, 2.0, 0.8).tentative);
        assert!(!at(51.0, 2.0, 0.1).tentative);
        // The interval is clipped to 0-100 and always holds the score.
        for (s, n) in [(99.0, 5.0), (1.0, 5.0), (50.0, 0.0), (50.0, f64::INFINITY)] {
            let sc = at(s, n, 0.8);
            assert!(sc.interval[0] <= s && s <= sc.interval[1] && sc.interval[0] >= 0.0 && sc.interval[1] <= 100.0);
        }
    }

    #[test]
    fn intervals_hold_their_value_and_narrow_with_evidence() {
        let mut last = 1.0;
        for n in [2.0, 5.0, 20.0, 100.0, 1_000.0] {
            let v: f64 = 0.7;
            let sd = (v * (1.0 - v) / (n + 1.0)).sqrt();
            let [lo, hi] = beta_interval(v, sd, INTERVAL_LEVEL);
            assert!(lo < v && v < hi, "{lo} {v} {hi}");
            assert!(hi - lo < last, "narrower with more evidence");
            last = hi - lo;
        }
        assert_eq!(beta_interval(1.0, 0.1, 0.8), [1.0, 1.0]);
        assert_eq!(beta_interval(0.5, 0.9, 0.8), [0.0, 1.0]);
        assert_eq!(score_interval(95.0, 10.0, 0.8), [95.0 - 10.0 * Z_80, 100.0]);
    }
}
