//! Decimal formatting of integers into a stack buffer (for header values on the hot path,
//! where `format!` would allocate).

/// Room for any `u64` in decimal.
pub type DecimalBuf = [u8; 20];

/// A zeroed [`DecimalBuf`].
pub fn decimal_buf() -> DecimalBuf {
    [0u8; 20]
}

/// Writes `v` in decimal at the end of `buf` and returns it as text.
pub fn fmt_u64(buf: &mut DecimalBuf, mut v: u64) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_zero_and_extremes() {
        let mut b = decimal_buf();
        assert_eq!(fmt_u64(&mut b, 0), "0");
        assert_eq!(fmt_u64(&mut b, 7), "7");
        assert_eq!(fmt_u64(&mut b, 1234567890), "1234567890");
        assert_eq!(fmt_u64(&mut b, u64::MAX), "18446744073709551615");
    }
}
