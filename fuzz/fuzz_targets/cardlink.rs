#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    jpki_pkcs11_fuzz::cardlink::run(data);
});
