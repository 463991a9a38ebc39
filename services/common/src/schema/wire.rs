//! The Confluent wire format of a value written under a registered schema:
//! a zero byte, the schema's global id as four big-endian bytes, then the
//! payload (Avro's binary encoding, or JSON text).

/// The wire format's first byte.
pub const MAGIC: u8 = 0;

/// The schema id and payload of bytes in the wire format.
pub fn split(bytes: &[u8]) -> Option<(u32, &[u8])> {
    match bytes {
        [MAGIC, a, b, c, d, payload @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), payload)),
        _ => None,
    }
}

/// `payload` under schema `id`, in the wire format.
pub fn join(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_is_a_zero_and_the_id_big_endian() {
        let bytes = join(258, b"x");
        assert_eq!(bytes, [0, 0, 0, 1, 2, b'x']);
        assert_eq!(split(&bytes), Some((258, &b"x"[..])));
        assert_eq!(split(b"{\"a\":1}"), None, "JSON is not the wire format");
        assert_eq!(split(&[0, 0, 1]), None, "too short");
    }
}
