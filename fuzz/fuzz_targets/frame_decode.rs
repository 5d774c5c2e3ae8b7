//! Any datagram into the frame decoder, MAC and AEAD: an error or a frame, never a panic;
//! a frame that decodes encodes back to a datagram that decodes to the same body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ordo_core::Security;

fuzz_target!(|data: &[u8]| {
    for security in [Security::Mac, Security::Aead] {
        let codec = ordo_fuzz::codec(security, 1);
        let mut datagram = data.to_vec();
        if let Ok(frame) = codec.decode(&mut datagram) {
            let body = frame.body;
            let mut out = vec![0u8; 1408];
            let mut sender = ordo_fuzz::codec(security, frame.header.sender().0);
            if let Ok(length) = sender.encode(&mut out, frame.header.term(), &body) {
                let again = codec.decode(&mut out[..length]).expect("what was encoded decodes");
                assert_eq!(again.body, body);
            }
        }
    }
});
