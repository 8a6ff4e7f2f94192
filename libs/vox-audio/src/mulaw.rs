//! G.711 μ-law, the carriers' 8 kHz telephone codec (ITU-T G.711, with the usual bias of
//! 0x84 and clipping at 32635).

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

pub fn encode_sample(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s;
    }
    s = s.min(CLIP) + BIAS;
    // The segment: position of the highest set bit among bits 7..=14, as 0..=7.
    let mut exponent = 7;
    while exponent > 0 && (s & (0x4000 >> (7 - exponent))) == 0 {
        exponent -= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

pub fn decode_sample(byte: u8) -> i16 {
    let b = !byte;
    let sign = b & 0x80;
    let exponent = i32::from((b >> 4) & 0x07);
    let mantissa = i32::from(b & 0x0F);
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

pub fn encode(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|s| encode_sample(*s)).collect()
}

pub fn decode(bytes: &[u8]) -> Vec<i16> {
    bytes.iter().map(|b| decode_sample(*b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(encode_sample(0), 0xFF);
        assert_eq!(decode_sample(0xFF), 0);
        assert_eq!(decode_sample(0x7F), 0);
        assert_eq!(decode_sample(0x00), -32124);
        assert_eq!(decode_sample(0x80), 32124);
        assert_eq!(encode_sample(i16::MAX), 0x80);
        assert_eq!(encode_sample(i16::MIN), 0x00);
    }

    #[test]
    fn every_code_survives_a_round_trip() {
        for b in 0..=255u8 {
            let s = decode_sample(b);
            let back = encode_sample(s);
            // 0x7F and 0xFF both mean zero.
            assert_eq!(decode_sample(back), s, "code {b:#04x}");
        }
    }

    #[test]
    fn quantisation_error_is_small_relative_to_the_signal() {
        for s in (-32000i32..32000).step_by(97) {
            let d = i32::from(decode_sample(encode_sample(s as i16)));
            let err = (d - s).abs();
            assert!(err <= (s.abs() / 16).max(8), "sample {s} decoded as {d}");
        }
    }
}
