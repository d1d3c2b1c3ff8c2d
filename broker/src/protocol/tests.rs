//! Decoder tests: fixed cases plus a property test that arbitrary bytes never panic or
//! allocate from unchecked wire lengths.
use super::*;
use bytes::BytesMut;
use kafka_protocol::messages::{MetadataRequest, RequestHeader};
use proptest::prelude::*;

fn frame(api: i16, version: i16, body: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(api);
    b.put_i16(version);
    b.put_i32(42);
    b.put_i16(-1); // null client id (header v1)
    b.extend_from_slice(body);
    b.freeze()
}

#[test]
fn decodes_a_metadata_request() {
    let mut b = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(3)
        .with_request_api_version(1)
        .with_correlation_id(9)
        .encode(&mut b, 1)
        .unwrap();
    MetadataRequest::default().encode(&mut b, 1).unwrap();
    let r = decode_request(b.freeze()).unwrap();
    assert_eq!(r.api_key, ApiKey::Metadata);
    assert_eq!(r.correlation_id(), 9);
}

#[test]
fn huge_array_count_in_a_tiny_request_is_malformed_not_an_allocation() {
    // Metadata v1: topics array with count 2^31-1 and nothing behind it.
    let r = decode_request(frame(3, 1, &[0x7f, 0xff, 0xff, 0xff, 0, 0]));
    assert!(matches!(r, Err(DecodeError::Malformed { .. })), "{r:?}");
}

#[test]
fn unknown_key_and_bad_versions_are_classified() {
    assert!(matches!(decode_request(frame(9999, 0, &[])), Err(DecodeError::UnknownApiKey(9999))));
    assert!(matches!(
        decode_request(frame(18, 99, &[])),
        Err(DecodeError::UnsupportedVersion { version: 99, correlation_id: 42, .. })
    ));
    // Produce v12 addresses topics by id, which Lantern does not advertise yet.
    assert!(matches!(decode_request(frame(0, 12, &[])), Err(DecodeError::UnsupportedVersion { .. })));
    assert!(matches!(decode_request(Bytes::from_static(&[0, 3])), Err(DecodeError::TooShort(2))));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

    /// Random bodies behind every implemented API and version: decoding returns, never panics.
    #[test]
    fn random_bodies_never_panic(idx in 0usize..SUPPORTED.len(), v in 0i16..20, body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let s = SUPPORTED[idx];
        let _ = decode_request(frame(s.key as i16, v, &body));
    }

    /// Valid header, then random bytes with large length fields sprinkled in.
    #[test]
    fn hostile_lengths_never_panic(idx in 0usize..SUPPORTED.len(), pos in 0usize..64, body in proptest::collection::vec(any::<u8>(), 0..128)) {
        let s = SUPPORTED[idx];
        let mut body = body;
        let at = pos.min(body.len());
        body.splice(at..at, [0x7f, 0xff, 0xff, 0xff]);
        let _ = decode_request(frame(s.key as i16, s.max, &body));
    }
}
