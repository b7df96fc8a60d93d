//! `exp2` and a logarithm for ranking keys, inline and in plain `f64` arithmetic, for the
//! fold's hot path.
//!
//! Folding an event decays it against its sum's anchor (one `exp2`) and ranks it among its
//! factor's top events (one `log2`). libm's versions are out-of-line calls, a large share of
//! the fold (docs/decisions.md). These inline: [`exp2`] agrees with
//! libm's to a few units in the last place, and [`key_log2`] to 1e-9, which is all a ranking key
//! kept as `f32` can hold. Unlike a correctly rounded `exp2`, this one is not monotone to the
//! last bit: at a few of its table seams it steps back by one ulp (tested), a relative 1e-16
//! that no score can show. Neither uses fused multiply-add or libm in the range the fold uses, so
//! there they give the same bits on every platform.

/// `2^(j/64)` for `j` in `0..64`, each the nearest `f64`.
const EXP2_TABLE: [f64; 64] = [
    1.0,
    1.0108892860517005,
    1.0218971486541166,
    1.0330248790212284,
    1.0442737824274138,
    1.0556451783605572,
    1.0671404006768237,
    1.0787607977571199,
    1.0905077326652577,
    1.102382583307841,
    1.1143867425958924,
    1.1265216186082418,
    1.1387886347566916,
    1.1511892299529827,
    1.1637248587775775,
    1.1763969916502812,
    1.189207115002721,
    1.202156731452703,
    1.215247359980469,
    1.22848053610687,
    1.241857812073484,
    1.255380757024691,
    1.2690509571917332,
    1.2828700160787783,
    1.2968395546510096,
    1.3109612115247644,
    1.3252366431597413,
    1.339667524053303,
    1.3542555469368927,
    1.3690024229745905,
    1.383909881963832,
    1.3989796725383112,
    std::f64::consts::SQRT_2,
    1.42961333839197,
    1.4451808069770467,
    1.460917794180647,
    1.4768261459394993,
    1.4929077282912648,
    1.5091644275934228,
    1.5255981507445384,
    1.5422108254079407,
    1.559004400237837,
    1.5759808451078865,
    1.593142151342267,
    1.6104903319492543,
    1.6280274218573478,
    1.645755478153965,
    1.6636765803267364,
    1.681792830507429,
    1.7001063537185235,
    1.718619298122478,
    1.7373338352737062,
    1.7562521603732995,
    1.7753764925265212,
    1.7947090750031072,
    1.8142521755003989,
    1.8340080864093424,
    1.8539791250833855,
    1.8741676341103,
    1.8945759815869656,
    1.9152065613971474,
    1.9360617934922943,
    1.9571441241754002,
    1.978456026387951,
];

/// Adding 1.5·2^52 to an `f64` below 2^51 in magnitude rounds it to an integer (to nearest,
/// ties to even), held in the low bits of the sum; subtracting it again gives the integer as
/// an `f64`.
const ROUNDER: f64 = 6_755_399_441_055_744.0;

/// `2^x`, to within 4 ulps of libm's (tested).
///
/// `x = n + j/64 + r` with `|r| <= 1/128`: `2^n` goes into the exponent bits, `2^(j/64)` comes
/// from the table, and `2^r = e^t`, `t = r·ln 2`, `|t| < 0.0055`, from its Taylor series to
/// `t^5` (the remainder is below 4e-17). Outside `(-1000, 1000)`, and for NaN, it defers to
/// libm; the fold never gets there (sums re-anchor at 480 half-lives).
#[inline]
pub(crate) fn exp2(x: f64) -> f64 {
    if !(x > -1000.0 && x < 1000.0) {
        return x.exp2();
    }
    let y = x * 64.0 + ROUNDER;
    // The low 32 bits hold the rounded integer, two's complement.
    let k = y.to_bits() as u32 as i32;
    let t = (x - (y - ROUNDER) * (1.0 / 64.0)) * std::f64::consts::LN_2;
    let t2 = t * t;
    let p = 1.0 + t + t2 * (0.5 + t * (1.0 / 6.0) + t2 * (1.0 / 24.0 + t * (1.0 / 120.0)));
    // |k >> 6| < 1000, so the biased exponent is in 23..2023: a normal power of two.
    let pow2_n = f64::from_bits((((k >> 6) + 1023) as u64) << 52);
    EXP2_TABLE[(k & 63) as usize] * p * pow2_n
}

/// `log2(m)` to within 1e-9, for ranking keys: a key is kept as `f32`, whose spacing at the
/// keys' size (tens to hundreds of half-lives) is above 1e-6, so it ranks as the exact
/// logarithm would. Exact at powers of two; libm's for zero, subnormals, infinities and NaN.
///
/// `m = 2^e·f` with `f` in `[√½, √2)`, and `ln f = 2·atanh(s)` with `s = (f-1)/(f+1)`,
/// `|s| < 0.172`, summed to `s^11` (the remainder is below 3e-10).
#[inline]
pub(crate) fn key_log2(m: f64) -> f64 {
    if !(f64::MIN_POSITIVE..=f64::MAX).contains(&m) {
        return m.log2();
    }
    let bits = m.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut f = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    if f > std::f64::consts::SQRT_2 {
        f *= 0.5;
        e += 1;
    }
    let s = (f - 1.0) / (f + 1.0);
    let z = s * s;
    let z2 = z * z;
    let series = 1.0 + z * (1.0 / 3.0) + z2 * (1.0 / 5.0 + z * (1.0 / 7.0) + z2 * (1.0 / 9.0 + z * (1.0 / 11.0)));
    e as f64 + s * series * (2.0 * std::f64::consts::LOG2_E)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reproducible inputs: a 64-bit LCG's top 53 bits, in `[0, 1)`.
    fn uniform(n: usize) -> impl Iterator<Item = f64> {
        let mut s: u64 = 0x2545_f491_4f6c_dd1d;
        (0..n).map(move |_| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        })
    }

    fn ulps(a: f64, b: f64) -> u64 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn the_table_holds_the_powers_it_names() {
        for (j, v) in EXP2_TABLE.iter().enumerate() {
            assert!(ulps(*v, (j as f64 / 64.0).exp2()) <= 1, "{j}");
        }
    }

    #[test]
    fn exp2_agrees_with_libm_to_a_few_ulps() {
        let worst =
            uniform(300_000).flat_map(|u| [(u - 0.5) * 1998.0, (u - 0.5) * 2.0]).map(|x| ulps(exp2(x), x.exp2())).max();
        assert!(worst <= Some(4), "worst {worst:?} ulps");
        for x in [0.0, 1.0, -1.0, 10.0, -480.0, 480.0, 999.0, -999.0] {
            assert_eq!(exp2(x), x.exp2(), "{x}");
        }
        for x in [1000.0, 1023.5, -1000.0, -1060.5, -2000.0, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(exp2(x), x.exp2(), "{x}");
        }
        assert!(exp2(f64::NAN).is_nan());
    }

    /// Decay should not rise with age. Where `x·64` crosses a half, the table entry changes
    /// and the two sides round independently: stepping through the 128,000 seams of
    /// (−1000, 1000) ulp by ulp found 94 steps back, each of one ulp (a relative 1e-16), all
    /// within (−32, 32); libm's `exp2` showed none in 40 M steps. This pins that bound.
    #[test]
    fn exp2_steps_back_at_most_one_ulp_at_the_table_seams() {
        let mut back = 0;
        for k in -2_000i64..2_000 {
            let seam = (k as f64 + 0.5) / 64.0;
            let mut x = seam - seam.abs().max(1.0) * 1e-14;
            let mut prev = exp2(x);
            while x < seam + seam.abs().max(1.0) * 1e-14 {
                x = x.next_up();
                let v = exp2(x);
                if v < prev {
                    assert_eq!(ulps(v, prev), 1, "exp2 steps down at {x}");
                    back += 1;
                }
                prev = v;
            }
        }
        assert!(back <= 94, "{back} steps back at 4,000 seams");
    }

    #[test]
    fn key_log2_is_within_1e_9_of_libm() {
        for u in uniform(300_000) {
            for m in [(u * 120.0 - 60.0).exp2(), 0.5 + u] {
                assert!((key_log2(m) - m.log2()).abs() < 1e-9, "{m}");
            }
        }
        for (m, l) in [(1.0, 0.0), (2.0, 1.0), (0.5, -1.0), (0.25, -2.0), (1024.0, 10.0)] {
            assert_eq!(key_log2(m), l);
        }
        for m in [0.0, f64::from_bits(3), f64::INFINITY] {
            assert_eq!(key_log2(m), m.log2());
        }
        assert!(key_log2(-1.0).is_nan() && key_log2(f64::NAN).is_nan());
    }
}
