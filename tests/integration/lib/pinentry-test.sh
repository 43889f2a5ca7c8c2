#!/bin/sh
# A pinentry for the tests (the Assuan protocol of GnuPG's pinentry): answers every GETPIN
# with $PINENTRY_TEST_PIN and records each prompt's description in $PINENTRY_TEST_LOG.
echo "OK Pleased to meet you"
desc=""
while IFS= read -r line; do
    case "$line" in
        SETDESC*) desc=${line#SETDESC }; echo OK ;;
        GETPIN*)
            [ -n "${PINENTRY_TEST_LOG:-}" ] && echo "GETPIN $desc" >>"$PINENTRY_TEST_LOG"
            printf 'D %s\nOK\n' "$PINENTRY_TEST_PIN" ;;
        BYE*) echo OK; exit 0 ;;
        *) echo OK ;;
    esac
done
