//! Exact arithmetic over amounts, energy and GPU-hours (PROTOCOL §9 "Rounding"): sums and
//! products can need more than 128 bits, so figures are big integers (`Int`), divided
//! last and rounded down, and written in JSON as integer literals of any size; the
//! audit's hot comparisons (`product_lt`) and sums (`total`) are exact without
//! allocating.

use std::fmt;
use std::ops::{Add, AddAssign, Mul, Sub};

use num_bigint::BigInt;
use num_integer::Integer;
use num_traits::{Signed, ToPrimitive, Zero};
use serde::{Serialize, Serializer};

/// Σ of values below 2^64, exactly: u128 holds the sum of 2^64 of them, more terms than
/// any iterator can yield.
pub fn total<I: IntoIterator<Item = u64>>(values: I) -> u128 {
    values.into_iter().fold(0, |sum: u128, v| {
        sum.checked_add(u128::from(v))
            .unwrap_or_else(|| unreachable!("a sum of fewer than 2^64 terms below 2^64"))
    })
}

/// `a × b < c × d`, exactly, for any u128 operands: the products are compared at 256 bits.
pub fn product_lt(a: u128, b: u128, c: u128, d: u128) -> bool {
    wide_mul(a, b) < wide_mul(c, d)
}

/// `a × b` as (high, low) 128-bit halves: schoolbook multiplication over 64-bit limbs.
/// No step can overflow: each partial product of two limbs is below 2^128, `mid` sums
/// three values below 2^64, and the high half of a product of two u128 is below 2^128.
fn wide_mul(a: u128, b: u128) -> (u128, u128) {
    const LIMB: u128 = u64::MAX as u128;
    let (a1, a0, b1, b0) = (a >> 64, a & LIMB, b >> 64, b & LIMB);
    #[allow(clippy::arithmetic_side_effects)] // limbs below 2^64: products below 2^128
    let (p00, p01, p10, p11) = (a0 * b0, a0 * b1, a1 * b0, a1 * b1);
    #[allow(clippy::arithmetic_side_effects)] // three terms below 2^64
    let mid = (p00 >> 64) + (p01 & LIMB) + (p10 & LIMB);
    let low = (p00 & LIMB) | (mid << 64);
    #[allow(clippy::arithmetic_side_effects)] // the high half of a 256-bit product
    let high = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    (high, low)
}

/// Groups a decimal's digits by thousands, keeping a leading minus: `-1234567` →
/// `-1,234,567`.
pub fn grouped(digits: &str) -> String {
    let (sign, digits) = match digits.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", digits),
    };
    let mut out = String::with_capacity(digits.len().saturating_mul(2));
    out.push_str(sign);
    let mut left = digits.len();
    for c in digits.chars() {
        if left != digits.len() && left % 3 == 0 {
            out.push(',');
        }
        out.push(c);
        left = left.saturating_sub(1);
    }
    out
}

/// `a × b` for two u64: below 2^128, so exact in u128.
pub fn times(a: u64, b: u64) -> u128 {
    #[allow(clippy::arithmetic_side_effects)] // (2^64 − 1)^2 < 2^128
    let product = u128::from(a) * u128::from(b);
    product
}

/// An exact integer figure.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Int(BigInt);

impl Int {
    pub fn zero() -> Int {
        Int(BigInt::zero())
    }

    /// ⌊self ÷ by⌋, or None when `by` is 0 (an undefined ratio).
    pub fn div_floor(&self, by: &Int) -> Option<Int> {
        (!by.0.is_zero()).then(|| Int(self.0.div_floor(&by.0)))
    }

    /// ⌊part × 10,000 ÷ whole⌋: a ratio in basis points, None when `whole` is 0.
    pub fn basis_points(part: &Int, whole: &Int) -> Option<Int> {
        (part * &Int::from(10_000u64)).div_floor(whole)
    }

    pub fn is_negative(&self) -> bool {
        self.0.is_negative()
    }

    pub fn max(self, other: Int) -> Int {
        if self >= other { self } else { other }
    }

    /// The nearest binary64, for the one figure PROTOCOL §9 computes in floating point.
    pub fn to_f64(&self) -> f64 {
        // BigInt's conversion is total (±infinity beyond f64's range).
        self.0
            .to_f64()
            .unwrap_or_else(|| unreachable!("BigInt converts to f64"))
    }

    /// A decimal integer, `-` allowed.
    pub fn parse_decimal(text: &str) -> Option<Int> {
        text.parse::<BigInt>().ok().map(Int)
    }

    /// A finite binary64 with no fraction, exactly.
    pub fn from_whole_f64(x: f64) -> Option<Int> {
        if !x.is_finite() || x.fract() != 0.0 {
            return None;
        }
        num_traits::FromPrimitive::from_f64(x).map(Int)
    }
}

macro_rules! from_primitive {
    ($($t:ty),+) => {$(
        impl From<$t> for Int {
            fn from(v: $t) -> Int { Int(BigInt::from(v)) }
        }
    )+};
}
from_primitive!(u64, i64, u128, i128, u32, usize);

impl fmt::Display for Int {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for Int {
    /// An integer literal of any size: within i64 as a number, beyond it as the raw
    /// digits, never as a float.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.to_i64() {
            Some(v) => s.serialize_i64(v),
            None => serde_json::value::RawValue::from_string(self.0.to_string())
                .map_err(serde::ser::Error::custom)?
                .serialize(s),
        }
    }
}

impl Add<&Int> for &Int {
    type Output = Int;
    fn add(self, other: &Int) -> Int {
        Int(&self.0 + &other.0)
    }
}

impl Sub<&Int> for &Int {
    type Output = Int;
    fn sub(self, other: &Int) -> Int {
        Int(&self.0 - &other.0)
    }
}

impl Mul<&Int> for &Int {
    type Output = Int;
    fn mul(self, other: &Int) -> Int {
        Int(&self.0 * &other.0)
    }
}

impl AddAssign<&Int> for Int {
    fn add_assign(&mut self, other: &Int) {
        self.0 += &other.0;
    }
}

macro_rules! add_primitive {
    ($($t:ty),+) => {$(
        impl AddAssign<$t> for Int {
            fn add_assign(&mut self, other: $t) { self.0 += other; }
        }
    )+};
}
add_primitive!(u64, i64, u128, i128);

impl std::iter::Sum for Int {
    fn sum<I: Iterator<Item = Int>>(iter: I) -> Int {
        iter.fold(Int::zero(), |acc, x| &acc + &x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn digits_group_by_thousands() {
        for (n, shown) in [
            ("0", "0"),
            ("999", "999"),
            ("1000", "1,000"),
            ("-1234567", "-1,234,567"),
            ("48000000", "48,000,000"),
        ] {
            assert_eq!(grouped(n), shown);
        }
    }

    #[test]
    fn literals_of_any_size() {
        let big = &Int::from(u128::MAX) * &Int::from(u128::MAX);
        let text = serde_json::to_string(&vec![Int::from(-5i64), big.clone()]).unwrap();
        assert_eq!(text, format!("[-5,{big}]"));
        assert!(text.len() > 70 && !text.contains('e') && !text.contains('.'));
    }

    #[test]
    fn ratios_round_down_and_are_undefined_over_zero() {
        assert_eq!(
            Int::basis_points(&Int::from(1u64), &Int::from(3u64)),
            Some(Int::from(3333u64))
        );
        assert_eq!(Int::basis_points(&Int::from(1u64), &Int::zero()), None);
        assert_eq!(
            Int::from(-7i64).div_floor(&Int::from(2u64)),
            Some(Int::from(-4i64))
        );
    }

    fn big(x: u128) -> BigInt {
        BigInt::from(x)
    }

    proptest! {
        #[test]
        fn wide_products_compare_as_big_integers_do(a in any::<u128>(), b in any::<u128>(), c in any::<u128>(), d in any::<u128>()) {
            prop_assert_eq!(product_lt(a, b, c, d), big(a) * big(b) < big(c) * big(d));
            let (high, low) = wide_mul(a, b);
            prop_assert_eq!((big(high) << 128) + big(low), big(a) * big(b));
        }

        #[test]
        fn totals_are_exact(values in proptest::collection::vec(any::<u64>(), 0..64)) {
            let want: BigInt = values.iter().map(|v| BigInt::from(*v)).sum();
            prop_assert_eq!(big(total(values.iter().copied())), want);
        }

        #[test]
        fn arithmetic_matches_i128_where_it_fits(a in any::<i64>(), b in any::<i64>(), d in 1i64..) {
            let (x, y) = (Int::from(a), Int::from(b));
            prop_assert_eq!(&x * &y, Int::from(i128::from(a) * i128::from(b)));
            prop_assert_eq!(&x + &y, Int::from(i128::from(a) + i128::from(b)));
            prop_assert_eq!(&x - &y, Int::from(i128::from(a) - i128::from(b)));
            prop_assert_eq!(x.div_floor(&Int::from(d)), Some(Int::from(i128::from(a).div_euclid(i128::from(d)))));
        }
    }
}
