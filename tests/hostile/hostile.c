/*
 * hostile: a PKCS#11 caller that does everything wrong, and checks that the module answers
 * each mistake with the exact CK_RV the specification (PKCS#11 2.40 / 3.0) names.
 *
 *   hostile MODULE.so [--no-fork]
 *
 * The module is loaded as real hosts load it: dlopen, then C_GetFunctionList / C_GetInterface.
 * Every call goes through EXPECT (one return value is right) or EXPECT2 (the specification
 * allows either of two: no precedence between two errors of one call). The program prints the
 * number of calls tried and every mismatch, and exits non-zero on any mismatch.
 *
 * Run inside tests/harness/with-card.sh: a JPKI card in the first reader and an empty second
 * reader, so token and empty-slot paths are exercised. With JPKI_VC and JPKI_TEST_CONTROL set,
 * the card is also removed and re-inserted. The card's default PINs (1234, ABC123) are used;
 * two wrong authentication PINs are tried (then the right one restores the counter).
 *
 * Build: cc -std=c99 -Wall -Wextra -I tests/hostile/include hostile.c -ldl
 * (the committed public-domain PKCS#11 3.2 header; tests/hostile/README.md says where it is from).
 */
#define _DEFAULT_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pkcs11.h"

static CK_FUNCTION_LIST_3_0 *F; /* the 3.0 interface: every function */
static CK_FUNCTION_LIST *F2;    /* the 2.40 list of C_GetFunctionList */
static unsigned long tried, mismatches;
static int quiet_section;

static const char *AUTH_PIN = "1234";
static const char *SIGN_PIN = "ABC123";

/* ----- reporting ---------------------------------------------------------------------------- */

static const char *rv_name(CK_RV rv)
{
    switch (rv) {
#define N(x) case x: return #x;
    N(CKR_OK) N(CKR_CANCEL) N(CKR_HOST_MEMORY) N(CKR_SLOT_ID_INVALID) N(CKR_GENERAL_ERROR)
    N(CKR_FUNCTION_FAILED) N(CKR_ARGUMENTS_BAD) N(CKR_NO_EVENT) N(CKR_NEED_TO_CREATE_THREADS)
    N(CKR_CANT_LOCK) N(CKR_ATTRIBUTE_READ_ONLY) N(CKR_ATTRIBUTE_SENSITIVE)
    N(CKR_ATTRIBUTE_TYPE_INVALID) N(CKR_ATTRIBUTE_VALUE_INVALID) N(CKR_DATA_INVALID)
    N(CKR_DATA_LEN_RANGE) N(CKR_DEVICE_ERROR) N(CKR_DEVICE_MEMORY) N(CKR_DEVICE_REMOVED)
    N(CKR_FUNCTION_CANCELED) N(CKR_FUNCTION_NOT_PARALLEL) N(CKR_FUNCTION_NOT_SUPPORTED)
    N(CKR_KEY_HANDLE_INVALID) N(CKR_KEY_TYPE_INCONSISTENT) N(CKR_KEY_INDIGESTIBLE)
    N(CKR_KEY_FUNCTION_NOT_PERMITTED) N(CKR_MECHANISM_INVALID) N(CKR_MECHANISM_PARAM_INVALID)
    N(CKR_OBJECT_HANDLE_INVALID) N(CKR_OPERATION_ACTIVE) N(CKR_OPERATION_NOT_INITIALIZED)
    N(CKR_PIN_INCORRECT) N(CKR_PIN_INVALID) N(CKR_PIN_LEN_RANGE) N(CKR_PIN_LOCKED)
    N(CKR_SESSION_CLOSED) N(CKR_SESSION_HANDLE_INVALID) N(CKR_SESSION_PARALLEL_NOT_SUPPORTED)
    N(CKR_SESSION_READ_ONLY) N(CKR_SIGNATURE_INVALID) N(CKR_SIGNATURE_LEN_RANGE)
    N(CKR_TEMPLATE_INCOMPLETE) N(CKR_TOKEN_NOT_PRESENT) N(CKR_TOKEN_WRITE_PROTECTED)
    N(CKR_USER_ALREADY_LOGGED_IN) N(CKR_USER_NOT_LOGGED_IN) N(CKR_USER_TYPE_INVALID)
    N(CKR_RANDOM_NO_RNG) N(CKR_RANDOM_SEED_NOT_SUPPORTED) N(CKR_ACTION_PROHIBITED)
    N(CKR_TEMPLATE_INCONSISTENT) N(CKR_BUFFER_TOO_SMALL) N(CKR_SAVED_STATE_INVALID)
    N(CKR_STATE_UNSAVEABLE) N(CKR_CRYPTOKI_NOT_INITIALIZED) N(CKR_CRYPTOKI_ALREADY_INITIALIZED)
#undef N
    default: return "?";
    }
}

static void expect(int line, const char *call, CK_RV got, CK_RV want, CK_RV alt)
{
    tried++;
    if (got == want || got == alt)
        return;
    mismatches++;
    if (want == alt)
        printf("MISMATCH line %d: %s -> %s (0x%lx), expected %s\n", line, call, rv_name(got),
               got, rv_name(want));
    else
        printf("MISMATCH line %d: %s -> %s (0x%lx), expected %s or %s\n", line, call,
               rv_name(got), got, rv_name(want), rv_name(alt));
}

#define EXPECT(want, call) expect(__LINE__, #call, (call), (want), (want))
#define EXPECT2(want, alt, call) expect(__LINE__, #call, (call), (want), (alt))

/* A property of the results (not a call). */
static void check(int line, int ok, const char *what)
{
    if (!ok) {
        mismatches++;
        printf("MISMATCH line %d: %s\n", line, what);
    }
}
#define CHECK(cond) check(__LINE__, (cond), #cond)

static void section(const char *name)
{
    static unsigned long last_tried, last_mismatches;
    static const char *current;
    if (current && !quiet_section)
        printf("%s - %s (%lu calls)\n", mismatches == last_mismatches ? "ok" : "not ok", current,
               tried - last_tried);
    current = name;
    last_tried = tried;
    last_mismatches = mismatches;
}

/* ----- helpers -------------------------------------------------------------------------------- */

static CK_ULONG ck_ulong_max(void) { return ~(CK_ULONG)0; }

static CK_RV login(CK_SESSION_HANDLE h, CK_USER_TYPE user, const char *pin)
{
    return F->C_Login(h, user, (CK_UTF8CHAR *)pin, strlen(pin));
}

static CK_FLAGS token_flags(CK_SLOT_ID slot)
{
    CK_TOKEN_INFO ti;
    memset(&ti, 0, sizeof ti);
    EXPECT(CKR_OK, F->C_GetTokenInfo(slot, &ti));
    return ti.flags;
}

static CK_STATE session_state(CK_SESSION_HANDLE h)
{
    CK_SESSION_INFO si;
    memset(&si, 0, sizeof si);
    EXPECT(CKR_OK, F->C_GetSessionInfo(h, &si));
    return si.state;
}

/* Finds exactly one object of `class` (0 objects: returns CK_INVALID_HANDLE). */
static CK_OBJECT_HANDLE find_one(CK_SESSION_HANDLE h, CK_OBJECT_CLASS class)
{
    CK_ATTRIBUTE t = {CKA_CLASS, &class, sizeof class};
    CK_OBJECT_HANDLE out[8];
    CK_ULONG n = 0;
    EXPECT(CKR_OK, F->C_FindObjectsInit(h, &t, 1));
    EXPECT(CKR_OK, F->C_FindObjects(h, out, 8, &n));
    EXPECT(CKR_OK, F->C_FindObjectsFinal(h));
    return n == 1 ? out[0] : CK_INVALID_HANDLE;
}

static int has_mechanism(CK_SLOT_ID slot, CK_MECHANISM_TYPE mech)
{
    CK_MECHANISM_TYPE list[64];
    CK_ULONG n = 64;
    EXPECT(CKR_OK, F->C_GetMechanismList(slot, list, &n));
    for (CK_ULONG i = 0; i < n && i < 64; i++)
        if (list[i] == mech)
            return 1;
    return 0;
}

static CK_ULONG count_objects(CK_SESSION_HANDLE h)
{
    CK_OBJECT_HANDLE out[64];
    CK_ULONG n = 0;
    EXPECT(CKR_OK, F->C_FindObjectsInit(h, NULL, 0));
    EXPECT(CKR_OK, F->C_FindObjects(h, out, 64, &n));
    EXPECT(CKR_OK, F->C_FindObjectsFinal(h));
    return n;
}

static int padded(const CK_UTF8CHAR *field, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (field[i] == 0)
            return 0;
    return field[len - 1] == ' ' || field[len - 1] > ' ';
}

/* Counting mutex callbacks for C_Initialize (a real implementation would not be needed: the
 * module uses OS locks when allowed, and refuses to depend on ours otherwise). */
static int mutexes;
static CK_RV create_mutex(void **m) { if (!m) return CKR_ARGUMENTS_BAD; *m = &mutexes; mutexes++; return CKR_OK; }
static CK_RV destroy_mutex(void *m) { (void)m; mutexes--; return CKR_OK; }
static CK_RV lock_mutex(void *m) { (void)m; return CKR_OK; }
static CK_RV unlock_mutex(void *m) { (void)m; return CKR_OK; }

/* ----- 1. before C_Initialize ----------------------------------------------------------------- */

#define H ((CK_SESSION_HANDLE)1)
#define NIL NULL

/* Every function except the list/interface getters, with NULL/0 arguments. */
static void every_function(CK_RV want)
{
    EXPECT(want, F->C_GetInfo(NIL));
    EXPECT(want, F->C_GetSlotList(CK_FALSE, NIL, NIL));
    EXPECT(want, F->C_GetSlotInfo(0, NIL));
    EXPECT(want, F->C_GetTokenInfo(0, NIL));
    EXPECT(want, F->C_GetMechanismList(0, NIL, NIL));
    EXPECT(want, F->C_GetMechanismInfo(0, CKM_RSA_PKCS, NIL));
    EXPECT(want, F->C_InitToken(0, NIL, 0, NIL));
    EXPECT(want, F->C_InitPIN(H, NIL, 0));
    EXPECT(want, F->C_SetPIN(H, NIL, 0, NIL, 0));
    EXPECT(want, F->C_OpenSession(0, CKF_SERIAL_SESSION, NIL, NIL, NIL));
    EXPECT(want, F->C_CloseSession(H));
    EXPECT(want, F->C_CloseAllSessions(0));
    EXPECT(want, F->C_GetSessionInfo(H, NIL));
    EXPECT(want, F->C_GetOperationState(H, NIL, NIL));
    EXPECT(want, F->C_SetOperationState(H, NIL, 0, 0, 0));
    EXPECT(want, F->C_Login(H, CKU_USER, NIL, 0));
    EXPECT(want, F->C_Logout(H));
    EXPECT(want, F->C_CreateObject(H, NIL, 0, NIL));
    EXPECT(want, F->C_CopyObject(H, 1, NIL, 0, NIL));
    EXPECT(want, F->C_DestroyObject(H, 1));
    EXPECT(want, F->C_GetObjectSize(H, 1, NIL));
    EXPECT(want, F->C_GetAttributeValue(H, 1, NIL, 0));
    EXPECT(want, F->C_SetAttributeValue(H, 1, NIL, 0));
    EXPECT(want, F->C_FindObjectsInit(H, NIL, 0));
    EXPECT(want, F->C_FindObjects(H, NIL, 0, NIL));
    EXPECT(want, F->C_FindObjectsFinal(H));
    EXPECT(want, F->C_EncryptInit(H, NIL, 1));
    EXPECT(want, F->C_Encrypt(H, NIL, 0, NIL, NIL));
    EXPECT(want, F->C_EncryptUpdate(H, NIL, 0, NIL, NIL));
    EXPECT(want, F->C_EncryptFinal(H, NIL, NIL));
    EXPECT(want, F->C_DecryptInit(H, NIL, 1));
    EXPECT(want, F->C_Decrypt(H, NIL, 0, NIL, NIL));
    EXPECT(want, F->C_DecryptUpdate(H, NIL, 0, NIL, NIL));
    EXPECT(want, F->C_DecryptFinal(H, NIL, NIL));
    EXPECT(want, F->C_DigestInit(H, NIL));
    EXPECT(want, F->C_Digest(H, NIL, 0, NIL, NIL));
    EXPECT(want, F->C_DigestUpdate(H, NIL, 0));
    EXPECT(want, F->C_DigestKey(H, 1));
    EXPECT(want, F->C_DigestFinal(H, NIL, NIL));
    EXPECT(want, F->C_SignInit(H, NIL, 1));
    EXPECT(want, F->C_Sign(H, NIL, 0, NIL, NIL));
    EXPECT(want, F->C_SignUpdate(H, NIL, 0));
    EXPECT(want, F->C_SignFinal(H, NIL, NIL));
    EXPECT(want, F->C_SignRecoverInit(H, NIL, 1));
    EXPECT(want, F->C_SignRecover(H, NIL, 0, NIL, NIL));
    EXPECT(want, F->C_VerifyInit(H, NIL, 1));
    EXPECT(want, F->C_Verify(H, NIL, 0, NIL, 0));
    EXPECT(want, F->C_VerifyUpdate(H, NIL, 0));
    EXPECT(want, F->C_VerifyFinal(H, NIL, 0));
    EXPECT(want, F->C_VerifyRecoverInit(H, NIL, 1));
    EXPECT(want, F->C_VerifyRecover(H, NIL, 0, NIL, NIL));
    EXPECT(want, F->C_DigestEncryptUpdate(H, NIL, 0, NIL, NIL));
    EXPECT(want, F->C_DecryptDigestUpdate(H, NIL, 0, NIL, NIL));
    EXPECT(want, F->C_SignEncryptUpdate(H, NIL, 0, NIL, NIL));
    EXPECT(want, F->C_DecryptVerifyUpdate(H, NIL, 0, NIL, NIL));
    EXPECT(want, F->C_GenerateKey(H, NIL, NIL, 0, NIL));
    EXPECT(want, F->C_GenerateKeyPair(H, NIL, NIL, 0, NIL, 0, NIL, NIL));
    EXPECT(want, F->C_WrapKey(H, NIL, 1, 1, NIL, NIL));
    EXPECT(want, F->C_UnwrapKey(H, NIL, 1, NIL, 0, NIL, 0, NIL));
    EXPECT(want, F->C_DeriveKey(H, NIL, 1, NIL, 0, NIL));
    EXPECT(want, F->C_SeedRandom(H, NIL, 0));
    EXPECT(want, F->C_GenerateRandom(H, NIL, 0));
    EXPECT(want, F->C_GetFunctionStatus(H));
    EXPECT(want, F->C_CancelFunction(H));
    EXPECT(want, F->C_WaitForSlotEvent(CKF_DONT_BLOCK, NIL, NIL));
    EXPECT(want, F->C_LoginUser(H, CKU_USER, NIL, 0, NIL, 0));
    EXPECT(want, F->C_SessionCancel(H, CKF_SIGN));
    EXPECT(want, F->C_MessageEncryptInit(H, NIL, 1));
    EXPECT(want, F->C_EncryptMessage(H, NIL, 0, NIL, 0, NIL, 0, NIL, NIL));
    EXPECT(want, F->C_EncryptMessageBegin(H, NIL, 0, NIL, 0));
    EXPECT(want, F->C_EncryptMessageNext(H, NIL, 0, NIL, 0, NIL, NIL, 0));
    EXPECT(want, F->C_MessageEncryptFinal(H));
    EXPECT(want, F->C_MessageDecryptInit(H, NIL, 1));
    EXPECT(want, F->C_DecryptMessage(H, NIL, 0, NIL, 0, NIL, 0, NIL, NIL));
    EXPECT(want, F->C_DecryptMessageBegin(H, NIL, 0, NIL, 0));
    EXPECT(want, F->C_DecryptMessageNext(H, NIL, 0, NIL, 0, NIL, NIL, 0));
    EXPECT(want, F->C_MessageDecryptFinal(H));
    EXPECT(want, F->C_MessageSignInit(H, NIL, 1));
    EXPECT(want, F->C_SignMessage(H, NIL, 0, NIL, 0, NIL, NIL));
    EXPECT(want, F->C_SignMessageBegin(H, NIL, 0));
    EXPECT(want, F->C_SignMessageNext(H, NIL, 0, NIL, 0, NIL, NIL));
    EXPECT(want, F->C_MessageSignFinal(H));
    EXPECT(want, F->C_MessageVerifyInit(H, NIL, 1));
    EXPECT(want, F->C_VerifyMessage(H, NIL, 0, NIL, 0, NIL, 0));
    EXPECT(want, F->C_VerifyMessageBegin(H, NIL, 0));
    EXPECT(want, F->C_VerifyMessageNext(H, NIL, 0, NIL, 0, NIL, 0));
    EXPECT(want, F->C_MessageVerifyFinal(H));
    /* The 2.40 list reaches the same functions. */
    EXPECT(want, F2->C_GetInfo(NIL));
    EXPECT(want, F2->C_Finalize(NIL));
}

static void lists_and_interfaces(void *lib)
{
    CK_C_GetFunctionList get_list = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    CK_C_GetInterfaceList get_ifaces = (CK_C_GetInterfaceList)dlsym(lib, "C_GetInterfaceList");
    CK_C_GetInterface get_iface = (CK_C_GetInterface)dlsym(lib, "C_GetInterface");
    if (!get_list || !get_ifaces || !get_iface) {
        printf("MISMATCH: the module does not export C_GetFunctionList/C_GetInterface(List)\n");
        exit(1);
    }
    EXPECT(CKR_ARGUMENTS_BAD, get_list(NULL));
    EXPECT(CKR_OK, get_list(&F2));
    CHECK(F2 && F2->version.major == 2 && F2->version.minor == 40);

    CK_ULONG n = 0;
    CK_INTERFACE ifs[4];
    EXPECT(CKR_ARGUMENTS_BAD, get_ifaces(NULL, NULL));
    EXPECT(CKR_ARGUMENTS_BAD, get_ifaces(ifs, NULL));
    EXPECT(CKR_OK, get_ifaces(NULL, &n));
    CHECK(n == 2);
    n = 1;
    EXPECT(CKR_BUFFER_TOO_SMALL, get_ifaces(ifs, &n));
    CHECK(n == 2);
    n = 0;
    EXPECT(CKR_BUFFER_TOO_SMALL, get_ifaces(ifs, &n));
    n = 4;
    EXPECT(CKR_OK, get_ifaces(ifs, &n));
    CHECK(n == 2 && strcmp((char *)ifs[0].pInterfaceName, "PKCS 11") == 0);

    CK_INTERFACE *iface = NULL;
    CK_VERSION v30 = {3, 0}, v240 = {2, 40}, v99 = {9, 9};
    EXPECT(CKR_ARGUMENTS_BAD, get_iface(NULL, NULL, NULL, 0));
    EXPECT(CKR_ARGUMENTS_BAD, get_iface((CK_UTF8CHAR *)"Vendor NSS FIPS Interface", NULL, &iface, 0));
    EXPECT(CKR_ARGUMENTS_BAD, get_iface((CK_UTF8CHAR *)"", NULL, &iface, 0));
    EXPECT(CKR_ARGUMENTS_BAD, get_iface((CK_UTF8CHAR *)"PKCS 11", &v99, &iface, 0));
    EXPECT(CKR_ARGUMENTS_BAD, get_iface((CK_UTF8CHAR *)"PKCS 11", NULL, &iface, CKF_INTERFACE_FORK_SAFE));
    EXPECT(CKR_OK, get_iface((CK_UTF8CHAR *)"PKCS 11", &v240, &iface, 0));
    CHECK(iface && ((CK_FUNCTION_LIST *)iface->pFunctionList)->version.minor == 40);
    EXPECT(CKR_OK, get_iface(NULL, &v30, &iface, 0));
    EXPECT(CKR_OK, get_iface((CK_UTF8CHAR *)"PKCS 11", NULL, &iface, 0));
    F = iface ? (CK_FUNCTION_LIST_3_0 *)iface->pFunctionList : NULL;
    if (!F || F->version.major != 3) {
        printf("MISMATCH: no 3.0 interface\n");
        exit(1);
    }
    /* Every entry of both lists is set. */
    void **p = (void **)&F->C_Initialize, **end = (void **)(&F->C_MessageVerifyFinal + 1);
    int all = 1;
    for (; p < end; p++)
        all &= *p != NULL;
    CHECK(all);
}

/* ----- 2. C_Initialize argument combinations -------------------------------------------------- */

static void initialize_arguments(void)
{
    CK_INFO info;
    CK_C_INITIALIZE_ARGS a;

    /* pReserved may only carry the module parameter string (NSS, p11-kit): an unreadable
     * pointer, or memory that is no NUL-terminated string within 1024 bytes, is refused. */
    static char unterminated[4096];
    memset(&a, 0, sizeof a);
    a.pReserved = (void *)8;
    EXPECT(CKR_ARGUMENTS_BAD, F->C_Initialize(&a));
    EXPECT(CKR_CRYPTOKI_NOT_INITIALIZED, F->C_GetInfo(&info));
    memset(unterminated, 'x', sizeof unterminated);
    a.pReserved = unterminated;
    EXPECT(CKR_ARGUMENTS_BAD, F->C_Initialize(&a));
    EXPECT(CKR_CRYPTOKI_NOT_INITIALIZED, F->C_GetInfo(&info));

    memset(&a, 0, sizeof a);
    a.CreateMutex = create_mutex;
    EXPECT(CKR_ARGUMENTS_BAD, F->C_Initialize(&a));
    a.DestroyMutex = destroy_mutex;
    a.LockMutex = lock_mutex;
    a.flags = CKF_OS_LOCKING_OK;
    EXPECT(CKR_ARGUMENTS_BAD, F->C_Initialize(&a)); /* three of four */
    a.UnlockMutex = unlock_mutex;
    a.flags = 0;
    /* Our callbacks only: the module uses OS locks and cannot promise to use ours. */
    EXPECT(CKR_CANT_LOCK, F->C_Initialize(&a));
    EXPECT(CKR_CRYPTOKI_NOT_INITIALIZED, F->C_GetInfo(&info));
    a.flags = CKF_OS_LOCKING_OK;
    EXPECT(CKR_OK, F->C_Initialize(&a));
    EXPECT(CKR_CRYPTOKI_ALREADY_INITIALIZED, F->C_Initialize(&a));
    EXPECT(CKR_CRYPTOKI_ALREADY_INITIALIZED, F->C_Initialize(NULL));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_Finalize(&a));
    EXPECT(CKR_OK, F->C_GetInfo(&info)); /* still initialised */
    EXPECT(CKR_OK, F->C_Finalize(NULL));
    EXPECT(CKR_CRYPTOKI_NOT_INITIALIZED, F->C_Finalize(NULL));
    CHECK(mutexes == 0);

    memset(&a, 0, sizeof a);
    a.flags = CKF_LIBRARY_CANT_CREATE_OS_THREADS;
    EXPECT(CKR_OK, F->C_Initialize(&a));
    EXPECT(CKR_OK, F->C_Finalize(NULL));
    a.flags = CKF_LIBRARY_CANT_CREATE_OS_THREADS | CKF_OS_LOCKING_OK;
    EXPECT(CKR_OK, F2->C_Initialize(&a));
    EXPECT(CKR_OK, F2->C_Finalize(NULL));
    memset(&a, 0, sizeof a);
    EXPECT(CKR_OK, F->C_Initialize(&a));
    EXPECT(CKR_OK, F->C_Finalize(NULL));
    /* Many rounds: nothing accumulates (valgrind checks the leaks). */
    for (int i = 0; i < 20; i++) {
        EXPECT(CKR_OK, F->C_Initialize(NULL));
        EXPECT(CKR_OK, F->C_Finalize(NULL));
    }
    EXPECT(CKR_OK, F->C_Initialize(NULL));
}

/* ----- 3. information, slots, tokens, mechanisms ----------------------------------------------- */

static CK_SLOT_ID auth_slot = ~0UL, sign_slot = ~0UL, empty_slot = ~0UL;

static void slots_and_tokens(void)
{
    CK_INFO info;
    EXPECT(CKR_ARGUMENTS_BAD, F->C_GetInfo(NULL));
    EXPECT(CKR_OK, F->C_GetInfo(&info));
    CHECK(info.cryptokiVersion.major == 3 && info.cryptokiVersion.minor == 0);
    CHECK(padded(info.manufacturerID, 32) && padded(info.libraryDescription, 32));
    EXPECT(CKR_OK, F2->C_GetInfo(&info));
    CHECK(info.cryptokiVersion.major == 2 && info.cryptokiVersion.minor == 40);

    CK_SLOT_ID slots[16];
    CK_ULONG n = 0, all;
    EXPECT(CKR_ARGUMENTS_BAD, F->C_GetSlotList(CK_FALSE, NULL, NULL));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_GetSlotList(CK_FALSE, slots, NULL));
    EXPECT(CKR_OK, F->C_GetSlotList(CK_FALSE, NULL, &n));
    all = n;
    CHECK(all >= 2 && all % 2 == 0 && all <= 16);
    n = 1;
    EXPECT(CKR_BUFFER_TOO_SMALL, F->C_GetSlotList(CK_FALSE, slots, &n));
    CHECK(n == all);
    n = 0;
    EXPECT(CKR_BUFFER_TOO_SMALL, F->C_GetSlotList(CK_FALSE, slots, &n));
    CHECK(n == all);
    n = ck_ulong_max(); /* "huge": only what is needed is written */
    EXPECT(CKR_OK, F->C_GetSlotList(CK_FALSE, slots, &n));
    CHECK(n == all);
    n = 16;
    EXPECT(CKR_OK, F->C_GetSlotList(0x7F /* any non-zero CK_BBOOL is true */, slots, &n));
    CHECK(n == 2);
    n = 16;
    EXPECT(CKR_OK, F->C_GetSlotList(CK_FALSE, slots, &n));

    for (CK_ULONG i = 0; i < n; i++) {
        CK_SLOT_INFO si;
        EXPECT(CKR_OK, F->C_GetSlotInfo(slots[i], &si));
        CHECK(padded(si.slotDescription, 64) && padded(si.manufacturerID, 32));
        CHECK((si.flags & (CKF_REMOVABLE_DEVICE | CKF_HW_SLOT)) == (CKF_REMOVABLE_DEVICE | CKF_HW_SLOT));
        if (si.flags & CKF_TOKEN_PRESENT) {
            if (auth_slot == ~0UL && slots[i] % 2 == 0)
                auth_slot = slots[i];
        } else if (empty_slot == ~0UL) {
            empty_slot = slots[i];
        }
    }
    if (auth_slot == ~0UL) {
        printf("MISMATCH: no slot with a token (run inside tests/harness/with-card.sh)\n");
        exit(1);
    }
    sign_slot = auth_slot + 1;
    if (empty_slot == ~0UL)
        printf("# no empty reader: empty-slot checks skipped\n");

    CK_SLOT_INFO si;
    CK_TOKEN_INFO ti;
    EXPECT(CKR_ARGUMENTS_BAD, F->C_GetSlotInfo(auth_slot, NULL));
    EXPECT(CKR_SLOT_ID_INVALID, F->C_GetSlotInfo(999, &si));
    EXPECT(CKR_SLOT_ID_INVALID, F->C_GetSlotInfo(ck_ulong_max(), &si));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_GetTokenInfo(auth_slot, NULL));
    EXPECT(CKR_SLOT_ID_INVALID, F->C_GetTokenInfo(999, &ti));
    EXPECT(CKR_SLOT_ID_INVALID, F->C_GetTokenInfo(ck_ulong_max(), &ti));
    if (empty_slot != ~0UL)
        EXPECT(CKR_TOKEN_NOT_PRESENT, F->C_GetTokenInfo(empty_slot, &ti));

    EXPECT(CKR_OK, F->C_GetTokenInfo(auth_slot, &ti));
    CHECK(padded(ti.label, 32) && padded(ti.manufacturerID, 32) && padded(ti.model, 16) &&
          padded(ti.serialNumber, 16));
    CHECK(ti.ulMinPinLen == 4 && ti.ulMaxPinLen == 4);
    CHECK((ti.flags & (CKF_LOGIN_REQUIRED | CKF_WRITE_PROTECTED | CKF_USER_PIN_INITIALIZED |
                       CKF_TOKEN_INITIALIZED)) ==
          (CKF_LOGIN_REQUIRED | CKF_WRITE_PROTECTED | CKF_USER_PIN_INITIALIZED | CKF_TOKEN_INITIALIZED));
    CHECK((ti.flags & (CKF_PROTECTED_AUTHENTICATION_PATH | CKF_USER_PIN_COUNT_LOW |
                       CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED)) == 0);
    CHECK(ti.flags & CKF_RNG); /* C_GenerateRandom: the operating system's generator */
    EXPECT(CKR_OK, F->C_GetTokenInfo(sign_slot, &ti));
    CHECK(ti.ulMinPinLen == 6 && ti.ulMaxPinLen == 16);

    CK_MECHANISM_TYPE mechs[32];
    CK_MECHANISM_INFO mi;
    CK_ULONG mn = 0, mall;
    EXPECT(CKR_ARGUMENTS_BAD, F->C_GetMechanismList(auth_slot, NULL, NULL));
    EXPECT(CKR_SLOT_ID_INVALID, F->C_GetMechanismList(999, NULL, &mn));
    if (empty_slot != ~0UL) {
        EXPECT(CKR_TOKEN_NOT_PRESENT, F->C_GetMechanismList(empty_slot, NULL, &mn));
        EXPECT(CKR_TOKEN_NOT_PRESENT, F->C_GetMechanismInfo(empty_slot, CKM_RSA_PKCS, &mi));
    }
    EXPECT(CKR_OK, F->C_GetMechanismList(auth_slot, NULL, &mn));
    mall = mn;
    CHECK(mall > 0 && mall <= 32);
    mn = 1;
    EXPECT(CKR_BUFFER_TOO_SMALL, F->C_GetMechanismList(auth_slot, mechs, &mn));
    CHECK(mn == mall);
    mn = 32;
    EXPECT(CKR_OK, F->C_GetMechanismList(sign_slot, mechs, &mn));
    for (CK_ULONG i = 0; i < mn; i++) {
        EXPECT(CKR_OK, F->C_GetMechanismInfo(sign_slot, mechs[i], &mi));
        CHECK(mechs[i] != CKM_RSA_X_509 && (mi.flags & (CKF_DECRYPT | CKF_ENCRYPT)) == 0);
    }
    EXPECT(CKR_ARGUMENTS_BAD, F->C_GetMechanismInfo(auth_slot, CKM_RSA_PKCS, NULL));
    EXPECT(CKR_MECHANISM_INVALID, F->C_GetMechanismInfo(auth_slot, CKM_RSA_X_509, &mi));
    EXPECT(CKR_MECHANISM_INVALID, F->C_GetMechanismInfo(auth_slot, CKM_MD5, &mi));
    EXPECT(CKR_MECHANISM_INVALID, F->C_GetMechanismInfo(auth_slot, ck_ulong_max(), &mi));
    EXPECT(CKR_SLOT_ID_INVALID, F->C_GetMechanismInfo(999, CKM_RSA_PKCS, &mi));

    /* The card is personalised by its issuer. */
    EXPECT(CKR_FUNCTION_NOT_SUPPORTED,
           F->C_InitToken(auth_slot, (CK_UTF8CHAR *)"1234", 4, (CK_UTF8CHAR *)"label"));

    CK_SLOT_ID ev;
    EXPECT(CKR_ARGUMENTS_BAD, F->C_WaitForSlotEvent(CKF_DONT_BLOCK, NULL, NULL));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_WaitForSlotEvent(CKF_DONT_BLOCK, &ev, &ev));
    EXPECT(CKR_NO_EVENT, F->C_WaitForSlotEvent(CKF_DONT_BLOCK, &ev, NULL));
}

/* ----- 4. sessions ------------------------------------------------------------------------------ */

/* Every function that takes a session, with handle `h` that is not a session of ours. */
static void every_session_function(CK_SESSION_HANDLE h)
{
    CK_BYTE buf[300];
    CK_ULONG len = sizeof buf;
    CK_MECHANISM mech = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CK_ATTRIBUTE attr = {CKA_CLASS, buf, sizeof(CK_ULONG)};
    CK_OBJECT_HANDLE obj;
    CK_SESSION_INFO si;
    const CK_RV W = CKR_SESSION_HANDLE_INVALID;
    EXPECT(W, F->C_CloseSession(h));
    EXPECT(W, F->C_GetSessionInfo(h, &si));
    EXPECT(W, F->C_GetOperationState(h, buf, &len));
    EXPECT(W, F->C_SetOperationState(h, buf, 4, 0, 0));
    EXPECT(W, F->C_Login(h, CKU_USER, (CK_UTF8CHAR *)"1234", 4));
    EXPECT(W, F->C_Logout(h));
    EXPECT(W, F->C_InitPIN(h, (CK_UTF8CHAR *)"1234", 4));
    EXPECT(W, F->C_SetPIN(h, (CK_UTF8CHAR *)"1234", 4, (CK_UTF8CHAR *)"5678", 4));
    EXPECT(W, F->C_CreateObject(h, &attr, 1, &obj));
    EXPECT(W, F->C_CopyObject(h, 1, &attr, 1, &obj));
    EXPECT(W, F->C_DestroyObject(h, 1));
    EXPECT(W, F->C_GetObjectSize(h, 1, &len));
    EXPECT(W, F->C_GetAttributeValue(h, 1, &attr, 1));
    EXPECT(W, F->C_SetAttributeValue(h, 1, &attr, 1));
    EXPECT(W, F->C_FindObjectsInit(h, &attr, 1));
    EXPECT(W, F->C_FindObjects(h, &obj, 1, &len));
    EXPECT(W, F->C_FindObjectsFinal(h));
    EXPECT(W, F->C_EncryptInit(h, &mech, 1));
    EXPECT(W, F->C_Encrypt(h, buf, 1, buf, &len));
    EXPECT(W, F->C_DecryptInit(h, &mech, 1));
    EXPECT(W, F->C_Decrypt(h, buf, 1, buf, &len));
    EXPECT(W, F->C_DigestInit(h, &mech));
    EXPECT(W, F->C_Digest(h, buf, 1, buf, &len));
    EXPECT(W, F->C_DigestUpdate(h, buf, 1));
    EXPECT(W, F->C_DigestKey(h, 1));
    EXPECT(W, F->C_DigestFinal(h, buf, &len));
    EXPECT(W, F->C_SignInit(h, &mech, 1));
    EXPECT(W, F->C_Sign(h, buf, 1, buf, &len));
    EXPECT(W, F->C_SignUpdate(h, buf, 1));
    EXPECT(W, F->C_SignFinal(h, buf, &len));
    EXPECT(W, F->C_SignRecoverInit(h, &mech, 1));
    EXPECT(W, F->C_VerifyInit(h, &mech, 1));
    EXPECT(W, F->C_Verify(h, buf, 1, buf, 256));
    EXPECT(W, F->C_VerifyUpdate(h, buf, 1));
    EXPECT(W, F->C_VerifyFinal(h, buf, 256));
    EXPECT(W, F->C_VerifyRecoverInit(h, &mech, 1));
    EXPECT(W, F->C_GenerateKey(h, &mech, &attr, 1, &obj));
    EXPECT(W, F->C_WrapKey(h, &mech, 1, 1, buf, &len));
    EXPECT(W, F->C_SeedRandom(h, buf, 4));
    EXPECT(W, F->C_GenerateRandom(h, buf, 4));
    EXPECT(W, F->C_GetFunctionStatus(h));
    EXPECT(W, F->C_CancelFunction(h));
    EXPECT(W, F->C_SessionCancel(h, CKF_SIGN));
    EXPECT(W, F->C_LoginUser(h, CKU_USER, (CK_UTF8CHAR *)"1234", 4, (CK_UTF8CHAR *)"u", 1));
}

static void sessions(void)
{
    CK_SESSION_HANDLE h = 0, h2 = 0;
    CK_SESSION_INFO si;
    EXPECT(CKR_SESSION_PARALLEL_NOT_SUPPORTED, F->C_OpenSession(auth_slot, 0, NULL, NULL, &h));
    EXPECT(CKR_SESSION_PARALLEL_NOT_SUPPORTED, F->C_OpenSession(auth_slot, CKF_RW_SESSION, NULL, NULL, &h));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_OpenSession(auth_slot, CKF_SERIAL_SESSION, NULL, NULL, NULL));
    EXPECT(CKR_SLOT_ID_INVALID, F->C_OpenSession(999, CKF_SERIAL_SESSION, NULL, NULL, &h));
    if (empty_slot != ~0UL)
        EXPECT(CKR_TOKEN_NOT_PRESENT, F->C_OpenSession(empty_slot, CKF_SERIAL_SESSION, NULL, NULL, &h));
    EXPECT(CKR_OK, F->C_OpenSession(auth_slot, CKF_SERIAL_SESSION, NULL, NULL, &h));
    EXPECT(CKR_OK, F->C_OpenSession(auth_slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h2));
    CHECK(h != CK_INVALID_HANDLE && h2 != CK_INVALID_HANDLE && h != h2);
    EXPECT(CKR_ARGUMENTS_BAD, F->C_GetSessionInfo(h, NULL));
    EXPECT(CKR_OK, F->C_GetSessionInfo(h2, &si));
    CHECK(si.slotID == auth_slot && si.state == CKS_RW_PUBLIC_SESSION &&
          si.flags == (CKF_SERIAL_SESSION | CKF_RW_SESSION));
    CHECK(session_state(h) == CKS_RO_PUBLIC_SESSION);

    /* No session can be saved or restored. */
    CK_BYTE state[64];
    CK_ULONG state_len = sizeof state;
    EXPECT(CKR_STATE_UNSAVEABLE, F->C_GetOperationState(h, state, &state_len));
    EXPECT(CKR_SAVED_STATE_INVALID, F->C_SetOperationState(h, state, sizeof state, 0, 0));

    every_session_function(CK_INVALID_HANDLE);
    every_session_function(0xDEADBEEF);
    every_session_function(ck_ulong_max());
    EXPECT(CKR_OK, F->C_CloseSession(h2));
    every_session_function(h2); /* closed */

    EXPECT(CKR_SLOT_ID_INVALID, F->C_CloseAllSessions(999));
    EXPECT(CKR_OK, F->C_CloseAllSessions(auth_slot));
    EXPECT(CKR_SESSION_HANDLE_INVALID, F->C_GetSessionInfo(h, &si));
}

/* ----- 5. login and PINs ----------------------------------------------------------------------- */

static void login_and_pins(void)
{
    CK_SESSION_HANDLE a, s, rw;
    EXPECT(CKR_OK, F->C_OpenSession(auth_slot, CKF_SERIAL_SESSION, NULL, NULL, &a));
    EXPECT(CKR_OK, F->C_OpenSession(sign_slot, CKF_SERIAL_SESSION, NULL, NULL, &s));
    EXPECT(CKR_OK, F->C_OpenSession(auth_slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &rw));

    /* Caller errors: no card traffic. */
    EXPECT(CKR_ARGUMENTS_BAD, F->C_Login(a, CKU_USER, NULL, 4));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_Login(a, CKU_USER, NULL, 0)); /* no protected path */
    EXPECT(CKR_USER_TYPE_INVALID, login(a, CKU_SO, AUTH_PIN));
    EXPECT(CKR_USER_TYPE_INVALID, login(a, 99, AUTH_PIN));
    EXPECT(CKR_USER_TYPE_INVALID, login(a, ck_ulong_max(), AUTH_PIN));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, login(a, CKU_CONTEXT_SPECIFIC, AUTH_PIN));
    /* PINs that cannot be right never reach the card (no try spent). C_Login answers
     * CKR_PIN_INCORRECT, the code the specification lists for it (CKR_PIN_LEN_RANGE and
     * CKR_PIN_INVALID are for functions that set a PIN); NSS and GnuTLS ask the person again
     * on it (docs/conformance.md). The token flags below prove no try was spent. */
    struct { const char *pin; size_t len; CK_RV want; } bad_auth[] = {
        {"", 0, CKR_PIN_INCORRECT}, {"1", 1, CKR_PIN_INCORRECT}, {"12", 2, CKR_PIN_INCORRECT},
        {"123", 3, CKR_PIN_INCORRECT}, {"12345", 5, CKR_PIN_INCORRECT},
        {"12a4", 4, CKR_PIN_INCORRECT}, {"12 4", 4, CKR_PIN_INCORRECT},
        {"\xef\xbc\x91\xef\xbc\x92", 6, CKR_PIN_INCORRECT}, /* full-width digits */
        {"1234567890123456", 16, CKR_PIN_INCORRECT}, {"1234\0", 5, CKR_PIN_INCORRECT},
        {"\xff\xfe\x00\x01", 4, CKR_PIN_INCORRECT},
    };
    for (size_t i = 0; i < sizeof bad_auth / sizeof *bad_auth; i++)
        EXPECT(bad_auth[i].want, F->C_Login(a, CKU_USER, (CK_UTF8CHAR *)bad_auth[i].pin, bad_auth[i].len));
    struct { const char *pin; CK_RV want; } bad_sign[] = {
        {"", CKR_PIN_INCORRECT}, {"1234", CKR_PIN_INCORRECT}, {"ABC12", CKR_PIN_INCORRECT},
        {"ABC-123", CKR_PIN_INCORRECT}, {"ABC 123", CKR_PIN_INCORRECT}, {"ABC123\n", CKR_PIN_INCORRECT},
        {"A234567890123456X", CKR_PIN_INCORRECT}, {"ABC\xc3\xa9" "12", CKR_PIN_INCORRECT},
    };
    for (size_t i = 0; i < sizeof bad_sign / sizeof *bad_sign; i++)
        EXPECT(bad_sign[i].want, login(s, CKU_USER, bad_sign[i].pin));
    /* Long and huge lengths: refused without reading past what a PIN can be. */
    size_t big = 100000;
    CK_UTF8CHAR *long_pin = malloc(big);
    memset(long_pin, '1', big);
    EXPECT(CKR_PIN_INCORRECT, F->C_Login(a, CKU_USER, long_pin, big));
    EXPECT(CKR_PIN_INCORRECT, F->C_Login(s, CKU_USER, long_pin, 17));
    free(long_pin);
    EXPECT(CKR_ARGUMENTS_BAD, F->C_Login(a, CKU_USER, (CK_UTF8CHAR *)"1234", ck_ulong_max()));
    CHECK((token_flags(auth_slot) & (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY)) == 0);
    CHECK((token_flags(sign_slot) & (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY)) == 0);
    CHECK(session_state(a) == CKS_RO_PUBLIC_SESSION);

    /* Wrong PINs: each spends a try, and the flags say so before the last one is spent. */
    EXPECT(CKR_PIN_INCORRECT, login(a, CKU_USER, "9999"));
    CK_FLAGS f = token_flags(auth_slot);
    CHECK((f & CKF_USER_PIN_COUNT_LOW) && !(f & CKF_USER_PIN_FINAL_TRY));
    EXPECT(CKR_PIN_INCORRECT, login(a, CKU_USER, "9998"));
    f = token_flags(auth_slot);
    CHECK((f & CKF_USER_PIN_FINAL_TRY) && !(f & CKF_USER_PIN_LOCKED));
    EXPECT(CKR_OK, login(a, CKU_USER, AUTH_PIN));
    CHECK((token_flags(auth_slot) & (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY)) == 0);
    CHECK(session_state(a) == CKS_RO_USER_FUNCTIONS);
    CHECK(session_state(rw) == CKS_RW_USER_FUNCTIONS);
    CHECK(session_state(s) == CKS_RO_PUBLIC_SESSION);
    EXPECT(CKR_USER_ALREADY_LOGGED_IN, login(a, CKU_USER, AUTH_PIN));
    EXPECT(CKR_USER_ALREADY_LOGGED_IN, login(rw, CKU_USER, AUTH_PIN));
    EXPECT(CKR_USER_TYPE_INVALID, login(a, CKU_SO, AUTH_PIN));
    EXPECT(CKR_OK, F->C_Logout(rw));
    CHECK(session_state(a) == CKS_RO_PUBLIC_SESSION);
    EXPECT(CKR_USER_NOT_LOGGED_IN, F->C_Logout(a));
    EXPECT(CKR_OK, login(s, CKU_USER, SIGN_PIN));
    EXPECT(CKR_OK, F->C_Logout(s));
    EXPECT(CKR_OK, login(s, CKU_USER, "abc123")); /* lower case: the card holds upper case */
    EXPECT(CKR_OK, F->C_Logout(s));

    /* C_SetPIN: a read-only session cannot; malformed new PINs are refused before the card. */
    EXPECT(CKR_SESSION_READ_ONLY,
           F->C_SetPIN(a, (CK_UTF8CHAR *)"1234", 4, (CK_UTF8CHAR *)"5678", 4));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_SetPIN(rw, NULL, 4, (CK_UTF8CHAR *)"5678", 4));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_SetPIN(rw, (CK_UTF8CHAR *)"1234", 4, NULL, 4));
    EXPECT(CKR_PIN_LEN_RANGE, F->C_SetPIN(rw, (CK_UTF8CHAR *)"12", 2, (CK_UTF8CHAR *)"5678", 4));
    EXPECT(CKR_PIN_INVALID, F->C_SetPIN(rw, (CK_UTF8CHAR *)"12a4", 4, (CK_UTF8CHAR *)"5678", 4));
    EXPECT(CKR_PIN_LEN_RANGE, F->C_SetPIN(rw, (CK_UTF8CHAR *)"1234", 4, (CK_UTF8CHAR *)"567", 3));
    EXPECT(CKR_PIN_LEN_RANGE, F->C_SetPIN(rw, (CK_UTF8CHAR *)"1234", 4, (CK_UTF8CHAR *)"", 0));
    EXPECT(CKR_PIN_INVALID, F->C_SetPIN(rw, (CK_UTF8CHAR *)"1234", 4, (CK_UTF8CHAR *)"56a8", 4));
    EXPECT(CKR_ARGUMENTS_BAD,
           F->C_SetPIN(rw, (CK_UTF8CHAR *)"1234", 4, (CK_UTF8CHAR *)"5678", ck_ulong_max()));
    CHECK((token_flags(auth_slot) & CKF_USER_PIN_COUNT_LOW) == 0);
    EXPECT(CKR_FUNCTION_NOT_SUPPORTED, F->C_InitPIN(rw, (CK_UTF8CHAR *)"1234", 4));
    EXPECT(CKR_FUNCTION_NOT_SUPPORTED,
           F->C_LoginUser(a, CKU_USER, (CK_UTF8CHAR *)"1234", 4, (CK_UTF8CHAR *)"user", 4));
    EXPECT(CKR_OK, F->C_CloseSession(a));
    EXPECT(CKR_OK, F->C_CloseSession(s));
    EXPECT(CKR_OK, F->C_CloseSession(rw));
}

/* ----- 6. objects and templates ---------------------------------------------------------------- */

static uint32_t rng_state = 12345;
static uint32_t rnd(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

static void objects(void)
{
    CK_SESSION_HANDLE a, s, rw;
    EXPECT(CKR_OK, F->C_OpenSession(auth_slot, CKF_SERIAL_SESSION, NULL, NULL, &a));
    EXPECT(CKR_OK, F->C_OpenSession(sign_slot, CKF_SERIAL_SESSION, NULL, NULL, &s));
    EXPECT(CKR_OK, F->C_OpenSession(auth_slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &rw));

    CK_ULONG public_auth = count_objects(a), public_sign = count_objects(s);
    CK_OBJECT_HANDLE sign_ca = find_one(s, CKO_CERTIFICATE);
    CHECK(sign_ca != CK_INVALID_HANDLE); /* the sign certificate is private: only the CA */
    CHECK(find_one(s, CKO_PRIVATE_KEY) == CK_INVALID_HANDLE);

    /* Search state machine and arguments. */
    CK_OBJECT_HANDLE out[64];
    CK_ULONG n = 0;
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof cls};
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_FindObjects(a, out, 64, &n));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_FindObjectsFinal(a));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_FindObjectsInit(a, NULL, 1));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_FindObjectsInit(a, &t, ck_ulong_max()));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_FindObjectsInit(a, &t, ck_ulong_max() / 8));
    EXPECT(CKR_OK, F->C_FindObjectsInit(a, &t, 1));
    EXPECT(CKR_OPERATION_ACTIVE, F->C_FindObjectsInit(a, &t, 1));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_FindObjects(a, NULL, 1, &n));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_FindObjects(a, out, 1, NULL));
    EXPECT(CKR_OK, F->C_FindObjects(a, NULL, 0, &n));
    CHECK(n == 0);
    EXPECT(CKR_OK, F->C_FindObjects(a, out, 1, &n));
    CHECK(n == 1);
    EXPECT(CKR_OK, F->C_FindObjects(a, out, ck_ulong_max(), &n)); /* the rest, within 64 */
    CHECK(n == 1);
    EXPECT(CKR_OK, F->C_FindObjects(a, out, 64, &n));
    CHECK(n == 0);
    EXPECT(CKR_OK, F->C_FindObjectsFinal(a));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_FindObjectsFinal(a));

    /* Garbage templates: values that fit nothing find nothing; bad pointers are refused. */
    CK_ATTRIBUTE g = {CKA_CLASS, NULL, sizeof cls};
    EXPECT(CKR_ARGUMENTS_BAD, F->C_FindObjectsInit(a, &g, 1));
    g.pValue = &cls;
    g.ulValueLen = ck_ulong_max();
    EXPECT(CKR_ARGUMENTS_BAD, F->C_FindObjectsInit(a, &g, 1));
    CK_ATTRIBUTE odd[] = {
        {CKA_CLASS, &cls, 3},               /* wrong size */
        {0xDEADBEEF, &cls, sizeof cls},     /* unknown type */
        {CKA_VENDOR_DEFINED | 0x4E534354, &cls, sizeof cls},
        {CKA_VALUE, NULL, 0},               /* empty value */
    };
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
        EXPECT(CKR_OK, F->C_FindObjectsInit(a, &odd[i], 1));
        EXPECT(CKR_OK, F->C_FindObjects(a, out, 64, &n));
        CHECK(n == 0);
        EXPECT(CKR_OK, F->C_FindObjectsFinal(a));
    }
    CK_BYTE junk[64 * 65];
    CK_ATTRIBUTE many[64];
    for (int round = 0; round < 20; round++) {
        CK_ULONG count = 1 + rnd() % 64;
        for (CK_ULONG i = 0; i < count; i++) {
            many[i].type = (round % 2) ? rnd() % 0x200 : rnd();
            many[i].pValue = junk + i * 65;
            many[i].ulValueLen = rnd() % 65;
            for (int k = 0; k < 65; k++)
                junk[i * 65 + k] = (CK_BYTE)rnd();
        }
        EXPECT(CKR_OK, F->C_FindObjectsInit(a, many, count));
        EXPECT(CKR_OK, F->C_FindObjects(a, out, 64, &n));
        CHECK(n == 0);
        EXPECT(CKR_OK, F->C_FindObjectsFinal(a));
    }

    /* Attributes. */
    CK_OBJECT_HANDLE cert;
    CK_CERTIFICATE_CATEGORY cat = 1;
    CK_ATTRIBUTE user_cert[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_CERTIFICATE_CATEGORY, &cat, sizeof cat}};
    EXPECT(CKR_OK, F->C_FindObjectsInit(a, user_cert, 2));
    EXPECT(CKR_OK, F->C_FindObjects(a, out, 64, &n));
    EXPECT(CKR_OK, F->C_FindObjectsFinal(a));
    CHECK(n == 1);
    cert = out[0];
    CK_BYTE value[4096];
    CK_ATTRIBUTE av = {CKA_VALUE, NULL, 0};
    EXPECT(CKR_ARGUMENTS_BAD, F->C_GetAttributeValue(a, cert, NULL, 1));
    EXPECT(CKR_OK, F->C_GetAttributeValue(a, cert, NULL, 0));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_GetAttributeValue(a, cert, &av, ck_ulong_max()));
    EXPECT(CKR_OBJECT_HANDLE_INVALID, F->C_GetAttributeValue(a, CK_INVALID_HANDLE, &av, 1));
    EXPECT(CKR_OBJECT_HANDLE_INVALID, F->C_GetAttributeValue(a, 0x7FFFFFF0, &av, 1));
    EXPECT(CKR_OBJECT_HANDLE_INVALID, F->C_GetAttributeValue(a, sign_ca, &av, 1)); /* other token */
    EXPECT(CKR_OK, F->C_GetAttributeValue(a, cert, &av, 1));
    CK_ULONG cert_len = av.ulValueLen;
    CHECK(cert_len > 500 && cert_len < sizeof value);
    av.pValue = value;
    av.ulValueLen = cert_len - 1;
    EXPECT(CKR_BUFFER_TOO_SMALL, F->C_GetAttributeValue(a, cert, &av, 1));
    CHECK(av.ulValueLen == CK_UNAVAILABLE_INFORMATION);
    av.ulValueLen = 0;
    EXPECT(CKR_BUFFER_TOO_SMALL, F->C_GetAttributeValue(a, cert, &av, 1));
    memset(value, 0xEE, sizeof value);
    av.ulValueLen = ck_ulong_max(); /* "huge": only the value's bytes are written */
    EXPECT(CKR_OK, F->C_GetAttributeValue(a, cert, &av, 1));
    CHECK(av.ulValueLen == cert_len && value[0] == 0x30 && value[cert_len] == 0xEE);
    CK_BBOOL b = 0;
    CK_ULONG ul = 77, unknown = 77;
    CK_ATTRIBUTE mix[] = {
        {CKA_TOKEN, &b, sizeof b},
        {0xDEADBEEF, &unknown, sizeof unknown},
        {CKA_CERTIFICATE_TYPE, &ul, sizeof ul},
    };
    EXPECT(CKR_ATTRIBUTE_TYPE_INVALID, F->C_GetAttributeValue(a, cert, mix, 3));
    CHECK(b == CK_TRUE && mix[1].ulValueLen == CK_UNAVAILABLE_INFORMATION && ul == CKC_X_509 &&
          unknown == 77);
    CK_ULONG size = 0;
    EXPECT(CKR_ARGUMENTS_BAD, F->C_GetObjectSize(a, cert, NULL));
    EXPECT(CKR_OBJECT_HANDLE_INVALID, F->C_GetObjectSize(a, 0xABCDEF, &size));
    EXPECT(CKR_OK, F->C_GetObjectSize(a, cert, &size));
    CHECK(size >= cert_len);

    /* The token is read-only (CKR_TOKEN_WRITE_PROTECTED ranks above CKR_SESSION_READ_ONLY) for
     * token objects; a template without CKA_TOKEN asks for a session object, allowed on a
     * write-protected token, and this one lacks its class (docs/conformance.md). */
    CK_OBJECT_HANDLE obj;
    CK_ATTRIBUTE label = {CKA_LABEL, (void *)"x", 1};
    CK_MECHANISM gen = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_SESSION_HANDLE both[2] = {a, rw};
    for (int i = 0; i < 2; i++) {
        EXPECT(CKR_TEMPLATE_INCOMPLETE, F->C_CreateObject(both[i], &label, 1, &obj));
        EXPECT(CKR_TOKEN_WRITE_PROTECTED, F->C_CopyObject(both[i], cert, &label, 1, &obj));
        EXPECT(CKR_TOKEN_WRITE_PROTECTED, F->C_DestroyObject(both[i], cert));
        EXPECT(CKR_TOKEN_WRITE_PROTECTED, F->C_SetAttributeValue(both[i], cert, &label, 1));
        EXPECT(CKR_TOKEN_WRITE_PROTECTED, F->C_GenerateKey(both[i], &gen, &label, 1, &obj));
        EXPECT(CKR_TOKEN_WRITE_PROTECTED,
               F->C_GenerateKeyPair(both[i], &gen, &label, 1, &label, 1, &obj, &obj));
    }

    /* Private objects appear with the login and disappear with the logout. */
    EXPECT(CKR_OK, login(a, CKU_USER, AUTH_PIN));
    CK_OBJECT_HANDLE priv = find_one(a, CKO_PRIVATE_KEY);
    CHECK(priv != CK_INVALID_HANDLE && count_objects(a) == public_auth + 1);
    CK_BYTE modulus[512];
    CK_ATTRIBUTE secret[] = {
        {CKA_MODULUS, modulus, sizeof modulus},
        {CKA_PRIVATE_EXPONENT, value, sizeof value},
        {CKA_PRIME_1, value, sizeof value},
    };
    EXPECT(CKR_ATTRIBUTE_SENSITIVE, F->C_GetAttributeValue(a, priv, secret, 3));
    CHECK(secret[0].ulValueLen == 256 && secret[1].ulValueLen == CK_UNAVAILABLE_INFORMATION);
    EXPECT(CKR_OK, login(s, CKU_USER, SIGN_PIN));
    CHECK(count_objects(s) == public_sign + 3); /* certificate, public and private key */
    EXPECT(CKR_OK, F->C_Logout(s));
    CHECK(count_objects(s) == public_sign);
    /* The card forgets both verifications at once: the auth token is logged out too. */
    CHECK(session_state(a) == CKS_RO_PUBLIC_SESSION);
    EXPECT(CKR_USER_NOT_LOGGED_IN, F->C_Logout(a));
    EXPECT(CKR_OBJECT_HANDLE_INVALID, F->C_GetAttributeValue(a, priv, secret, 1));
    EXPECT(CKR_OBJECT_HANDLE_INVALID, F->C_GetObjectSize(a, priv, &size));
    CHECK(count_objects(a) == public_auth);
    EXPECT(CKR_OK, F->C_CloseSession(a));
    EXPECT(CKR_OK, F->C_CloseSession(s));
    EXPECT(CKR_OK, F->C_CloseSession(rw));
}

/* ----- 6b. session objects: hostile templates, caps, lifetime ---------------------------------- */

static CK_RV create_data(CK_SESSION_HANDLE h, const void *value, CK_ULONG len, CK_OBJECT_HANDLE *o)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls}, {CKA_TOKEN, &no, sizeof no}, {CKA_VALUE, (void *)value, len}};
    return F->C_CreateObject(h, t, 3, o);
}

static void session_objects(void)
{
    CK_SESSION_HANDLE a, a2;
    CK_OBJECT_HANDLE o = 0, o2 = 0;
    EXPECT(CKR_OK, F->C_OpenSession(auth_slot, CKF_SERIAL_SESSION, NULL, NULL, &a));
    EXPECT(CKR_OK, F->C_OpenSession(auth_slot, CKF_SERIAL_SESSION, NULL, NULL, &a2));
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[2] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_TOKEN, &yes, sizeof yes}};
    EXPECT(CKR_TOKEN_WRITE_PROTECTED, F->C_CreateObject(a, t, 2, &o));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_CreateObject(a, NULL, 2, &o));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_CreateObject(a, t, 1, NULL));
    EXPECT(CKR_DEVICE_MEMORY, F->C_CreateObject(a, t, ck_ulong_max(), &o));
    /* A NULL value with a length, a huge claimed length: refused before any copy. */
    CK_ATTRIBUTE bad[2] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, NULL, 5}};
    EXPECT(CKR_ARGUMENTS_BAD, F->C_CreateObject(a, bad, 2, &o));
    bad[1].pValue = &cls;
    bad[1].ulValueLen = ck_ulong_max();
    EXPECT(CKR_DEVICE_MEMORY, F->C_CreateObject(a, bad, 2, &o));
    bad[1].ulValueLen = 3; /* CKA_LABEL of 3 bytes is fine; a class of 3 bytes is not */
    bad[0].ulValueLen = 3;
    EXPECT(CKR_ATTRIBUTE_VALUE_INVALID, F->C_CreateObject(a, bad, 2, &o));

    EXPECT(CKR_OK, create_data(a, "abc", 3, &o));
    CK_BYTE v[8];
    CK_ATTRIBUTE get = {CKA_VALUE, v, sizeof v};
    EXPECT(CKR_OK, F->C_GetAttributeValue(a2, o, &get, 1));
    CHECK(get.ulValueLen == 3 && memcmp(v, "abc", 3) == 0);
    EXPECT(CKR_ARGUMENTS_BAD, F->C_SetAttributeValue(a, o, NULL, 1));
    EXPECT(CKR_ATTRIBUTE_READ_ONLY, F->C_SetAttributeValue(a, o, t, 1)); /* CKA_CLASS */
    EXPECT(CKR_ARGUMENTS_BAD, F->C_CopyObject(a, o, NULL, 0, NULL));
    EXPECT(CKR_OK, F->C_CopyObject(a, o, NULL, 0, &o2));
    CHECK(o2 != o && o2 != CK_INVALID_HANDLE);
    CK_ULONG size = 0;
    EXPECT(CKR_OK, F->C_GetObjectSize(a2, o2, &size));
    EXPECT(CKR_OK, F->C_DestroyObject(a2, o2));
    EXPECT(CKR_OBJECT_HANDLE_INVALID, F->C_DestroyObject(a2, o2));
    /* Caps: a 64 KiB + 1 value, then more than 256 objects. */
    CK_BYTE *big = calloc(1, 65537);
    EXPECT(CKR_DEVICE_MEMORY, create_data(a2, big, 65537, &o2));
    free(big);
    CK_RV rv = CKR_OK;
    int made = 1;
    while (made < 1000 && (rv = create_data(a2, "x", 1, &o2)) == CKR_OK)
        made++;
    EXPECT(CKR_DEVICE_MEMORY, rv);
    CHECK(made == 256);
    /* Objects die with their session: a2's go, a's stays. */
    EXPECT(CKR_OK, F->C_CloseSession(a2));
    EXPECT(CKR_OBJECT_HANDLE_INVALID, F->C_GetObjectSize(a, o2, &size));
    EXPECT(CKR_OK, F->C_GetObjectSize(a, o, &size));
    EXPECT(CKR_OK, create_data(a, "y", 1, &o2));
    EXPECT(CKR_OK, F->C_CloseSession(a));
}

/* ----- 7. digest, sign, verify and what the card cannot do ------------------------------------- */

static const CK_BYTE SHA256_ABC[32] = {
    0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
    0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};

static void digest(CK_SESSION_HANDLE h)
{
    CK_MECHANISM sha256 = {CKM_SHA256, NULL, 0}, md5 = {CKM_MD5, NULL, 0};
    CK_BYTE out[64];
    CK_ULONG len = 0;
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_Digest(h, (CK_BYTE *)"abc", 3, out, &len));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_DigestUpdate(h, (CK_BYTE *)"abc", 3));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_DigestFinal(h, out, &len));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_DigestKey(h, 1));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_DigestInit(h, NULL));
    EXPECT(CKR_MECHANISM_INVALID, F->C_DigestInit(h, &md5));
    EXPECT(CKR_OK, F->C_DigestInit(h, &sha256));
    EXPECT(CKR_OPERATION_ACTIVE, F->C_DigestInit(h, &sha256));
    EXPECT(CKR_OK, F->C_Digest(h, (CK_BYTE *)"abc", 3, NULL, &len));
    CHECK(len == 32);
    len = 31;
    EXPECT(CKR_BUFFER_TOO_SMALL, F->C_Digest(h, (CK_BYTE *)"abc", 3, out, &len));
    CHECK(len == 32);
    /* An argument error ends the operation: the specification ends it on every error but
     * CKR_BUFFER_TOO_SMALL and a length query. */
    EXPECT(CKR_ARGUMENTS_BAD, F->C_Digest(h, NULL, 3, out, &len));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_DigestFinal(h, out, &len));
    EXPECT(CKR_OK, F->C_DigestInit(h, &sha256));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_Digest(h, (CK_BYTE *)"abc", ck_ulong_max(), out, &len));
    EXPECT(CKR_OK, F->C_DigestInit(h, &sha256));
    EXPECT(CKR_KEY_HANDLE_INVALID, F->C_DigestKey(h, 0xBAD));
    len = sizeof out;
    EXPECT(CKR_OK, F->C_Digest(h, (CK_BYTE *)"abc", 3, out, &len));
    CHECK(len == 32 && memcmp(out, SHA256_ABC, 32) == 0);
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_Digest(h, (CK_BYTE *)"abc", 3, out, &len));
    /* Multi-part, zero-length parts included. */
    EXPECT(CKR_OK, F->C_DigestInit(h, &sha256));
    EXPECT(CKR_OK, F->C_DigestUpdate(h, NULL, 0));
    EXPECT(CKR_OK, F->C_DigestUpdate(h, (CK_BYTE *)"a", 1));
    EXPECT(CKR_OK, F->C_DigestUpdate(h, (CK_BYTE *)"bc", 2));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_DigestUpdate(h, NULL, 1)); /* ends it */
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_DigestUpdate(h, (CK_BYTE *)"a", 1));
    EXPECT(CKR_OK, F->C_DigestInit(h, &sha256));
    EXPECT(CKR_OK, F->C_DigestUpdate(h, (CK_BYTE *)"abc", 3));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_DigestFinal(h, out, NULL)); /* ends it */
    EXPECT(CKR_OK, F->C_DigestInit(h, &sha256));
    EXPECT(CKR_OK, F->C_DigestUpdate(h, (CK_BYTE *)"abc", 3));
    /* Only the Final call ends a multi-part operation. */
    len = sizeof out;
    EXPECT(CKR_OPERATION_ACTIVE, F->C_Digest(h, (CK_BYTE *)"abc", 3, out, &len));
    EXPECT(CKR_OK, F->C_DigestInit(h, &sha256));
    EXPECT(CKR_OK, F->C_DigestUpdate(h, (CK_BYTE *)"abc", 3));
    len = 4;
    EXPECT(CKR_BUFFER_TOO_SMALL, F->C_DigestFinal(h, out, &len));
    len = sizeof out;
    EXPECT(CKR_OK, F->C_DigestFinal(h, out, &len));
    CHECK(len == 32 && memcmp(out, SHA256_ABC, 32) == 0);
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_DigestFinal(h, out, &len));
    EXPECT(CKR_OK, F->C_DigestInit(h, &sha256));
    EXPECT(CKR_OK, F->C_SessionCancel(h, CKF_DIGEST));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_DigestFinal(h, out, &len));
}

static void sign_and_verify(CK_SESSION_HANDLE h, CK_SLOT_ID slot, const char *pin)
{
    CK_MECHANISM sha256 = {CKM_SHA256_RSA_PKCS, NULL, 0}, raw = {CKM_RSA_PKCS, NULL, 0};
    CK_MECHANISM x509 = {CKM_RSA_X_509, NULL, 0}, pss = {CKM_RSA_PKCS_PSS, NULL, 0};
    CK_BYTE sig[512], data[300];
    CK_ULONG len = 0;
    memset(data, 0x5A, sizeof data);

    CK_OBJECT_HANDLE pub = find_one(h, CKO_PUBLIC_KEY);
    if (slot == auth_slot)
        CHECK(pub != CK_INVALID_HANDLE); /* public before login on the auth token */
    EXPECT(CKR_OK, login(h, CKU_USER, pin));
    CK_OBJECT_HANDLE priv = find_one(h, CKO_PRIVATE_KEY);
    pub = find_one(h, CKO_PUBLIC_KEY);
    CK_OBJECT_HANDLE cert = find_one(h, CKO_CERTIFICATE); /* two: CA and user → none */
    CHECK(priv != CK_INVALID_HANDLE && pub != CK_INVALID_HANDLE && cert == CK_INVALID_HANDLE);

    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_Sign(h, data, 32, sig, &len));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_SignUpdate(h, data, 32));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_SignFinal(h, sig, &len));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_SignInit(h, NULL, priv));
    EXPECT(CKR_MECHANISM_INVALID, F->C_SignInit(h, &x509, priv));
    if (has_mechanism(slot, CKM_RSA_PKCS_PSS)) {
        /* Only cards that sign PSS themselves offer it, with the card's fixed parameters. */
        CK_RSA_PKCS_PSS_PARAMS p = {CKM_SHA256, CKG_MGF1_SHA256, 32};
        CK_RSA_PKCS_PSS_PARAMS sha1 = {CKM_SHA_1, CKG_MGF1_SHA1, 20};
        CK_RSA_PKCS_PSS_PARAMS salt0 = {CKM_SHA256, CKG_MGF1_SHA256, 0};
        CK_MECHANISM with_params[] = {
            {CKM_RSA_PKCS_PSS, NULL, 0},
            {CKM_RSA_PKCS_PSS, &p, sizeof p - 1},
            {CKM_RSA_PKCS_PSS, &p, sizeof p + 8},
            {CKM_RSA_PKCS_PSS, &sha1, sizeof sha1},
            {CKM_RSA_PKCS_PSS, &salt0, sizeof salt0},
        };
        for (size_t i = 0; i < sizeof with_params / sizeof *with_params; i++)
            EXPECT(CKR_MECHANISM_PARAM_INVALID, F->C_SignInit(h, &with_params[i], priv));
        CK_MECHANISM good = {CKM_RSA_PKCS_PSS, &p, sizeof p};
        EXPECT(CKR_OK, F->C_SignInit(h, &good, priv));
        len = sizeof sig;
        EXPECT(CKR_DATA_LEN_RANGE, F->C_Sign(h, data, 31, sig, &len)); /* not a SHA-256 hash */
        EXPECT(CKR_OK, F->C_SignInit(h, &good, priv));
        len = sizeof sig;
        EXPECT(CKR_OK, F->C_Sign(h, data, 32, sig, &len));
        EXPECT(CKR_OK, F->C_VerifyInit(h, &good, pub));
        EXPECT(CKR_OK, F->C_Verify(h, data, 32, sig, len));
    } else {
        EXPECT(CKR_MECHANISM_INVALID, F->C_SignInit(h, &pss, priv));
    }
    EXPECT(CKR_KEY_HANDLE_INVALID, F->C_SignInit(h, &sha256, 0xBAD));
    EXPECT(CKR_KEY_HANDLE_INVALID, F->C_SignInit(h, &sha256, CK_INVALID_HANDLE));
    /* A public key cannot sign: either answer names the fault. */
    EXPECT2(CKR_KEY_TYPE_INCONSISTENT, CKR_KEY_FUNCTION_NOT_PERMITTED, F->C_SignInit(h, &sha256, pub));

    /* Single-part, with the two-call length convention. */
    EXPECT(CKR_OK, F->C_SignInit(h, &sha256, priv));
    EXPECT(CKR_OPERATION_ACTIVE, F->C_SignInit(h, &sha256, priv));
    /* Argument errors end the operation (as every error but CKR_BUFFER_TOO_SMALL). */
    EXPECT(CKR_ARGUMENTS_BAD, F->C_Sign(h, data, 32, sig, NULL));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_Sign(h, data, 32, NULL, &len));
    EXPECT(CKR_OK, F->C_SignInit(h, &sha256, priv));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_Sign(h, NULL, 32, sig, &len));
    EXPECT(CKR_OK, F->C_SignInit(h, &sha256, priv));
    EXPECT(CKR_OK, F->C_Sign(h, data, 32, NULL, &len));
    CHECK(len == 256);
    len = 255;
    EXPECT(CKR_BUFFER_TOO_SMALL, F->C_Sign(h, data, 32, sig, &len));
    CHECK(len == 256);
    len = 0;
    EXPECT(CKR_BUFFER_TOO_SMALL, F->C_Sign(h, data, 32, sig, &len));
    len = ck_ulong_max();
    memset(sig, 0xEE, sizeof sig);
    EXPECT(CKR_OK, F->C_Sign(h, data, 32, sig, &len));
    CHECK(len == 256 && sig[256] == 0xEE);
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_Sign(h, data, 32, sig, &len));

    /* The module's software verification agrees; a flipped bit does not verify. */
    EXPECT(CKR_ARGUMENTS_BAD, F->C_VerifyInit(h, NULL, pub));
    EXPECT(CKR_KEY_HANDLE_INVALID, F->C_VerifyInit(h, &sha256, 0xBAD));
    EXPECT2(CKR_KEY_TYPE_INCONSISTENT, CKR_KEY_FUNCTION_NOT_PERMITTED, F->C_VerifyInit(h, &sha256, priv));
    EXPECT(CKR_OK, F->C_VerifyInit(h, &sha256, pub));
    EXPECT(CKR_OPERATION_ACTIVE, F->C_VerifyInit(h, &sha256, pub));
    EXPECT(CKR_OK, F->C_Verify(h, data, 32, sig, 256));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_Verify(h, data, 32, sig, 256));
    sig[100] ^= 1;
    EXPECT(CKR_OK, F->C_VerifyInit(h, &sha256, pub));
    EXPECT(CKR_SIGNATURE_INVALID, F->C_Verify(h, data, 32, sig, 256));
    sig[100] ^= 1;
    EXPECT(CKR_OK, F->C_VerifyInit(h, &sha256, pub));
    EXPECT(CKR_SIGNATURE_LEN_RANGE, F->C_Verify(h, data, 32, sig, 255));
    EXPECT(CKR_OK, F->C_VerifyInit(h, &sha256, pub));
    EXPECT(CKR_SIGNATURE_LEN_RANGE, F->C_Verify(h, data, 32, sig, 0));
    EXPECT(CKR_OK, F->C_VerifyInit(h, &sha256, pub));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_Verify(h, data, 32, NULL, 256));
    EXPECT(CKR_OK, F->C_SessionCancel(h, CKF_VERIFY));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_VerifyFinal(h, sig, 256));

    /* Multi-part sign and verify, zero-length parts included. */
    EXPECT(CKR_OK, F->C_SignInit(h, &sha256, priv));
    EXPECT(CKR_OK, F->C_SignUpdate(h, data, 10));
    EXPECT(CKR_OK, F->C_SignUpdate(h, NULL, 0));
    EXPECT(CKR_OK, F->C_SignUpdate(h, data + 10, 22));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_SignFinal(h, sig, NULL)); /* ends it */
    EXPECT(CKR_OK, F->C_SignInit(h, &sha256, priv));
    EXPECT(CKR_OK, F->C_SignUpdate(h, data, 32));
    len = 1;
    EXPECT(CKR_BUFFER_TOO_SMALL, F->C_SignFinal(h, sig, &len));
    CHECK(len == 256);
    EXPECT(CKR_OK, F->C_SignFinal(h, NULL, &len));
    EXPECT(CKR_OK, F->C_SignFinal(h, sig, &len));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_SignFinal(h, sig, &len));
    EXPECT(CKR_OK, F->C_VerifyInit(h, &sha256, pub));
    EXPECT(CKR_OK, F->C_VerifyUpdate(h, data, 32));
    EXPECT(CKR_OK, F->C_VerifyFinal(h, sig, 256));

    /* CKM_RSA_PKCS: at most k - 11 = 245 bytes, at least one. */
    EXPECT(CKR_OK, F->C_SignInit(h, &raw, priv));
    len = sizeof sig;
    EXPECT(CKR_DATA_LEN_RANGE, F->C_Sign(h, data, 246, sig, &len));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_Sign(h, data, 245, sig, &len)); /* ended */
    /* Single-part only (the specification's mechanism table): an update ends the operation. */
    EXPECT(CKR_OK, F->C_SignInit(h, &raw, priv));
    EXPECT(CKR_FUNCTION_NOT_SUPPORTED, F->C_SignUpdate(h, data, 200));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_SignFinal(h, sig, &len));
    EXPECT(CKR_OK, F->C_VerifyInit(h, &raw, pub));
    EXPECT(CKR_FUNCTION_NOT_SUPPORTED, F->C_VerifyUpdate(h, data, 1));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_VerifyFinal(h, sig, 256));
    /* After an update only the Final call ends a multi-part operation; errors end it too. */
    EXPECT(CKR_OK, F->C_SignInit(h, &sha256, priv));
    EXPECT(CKR_OK, F->C_SignUpdate(h, data, 10));
    len = sizeof sig;
    EXPECT(CKR_OPERATION_ACTIVE, F->C_Sign(h, data, 10, sig, &len));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_SignFinal(h, sig, &len));
    EXPECT(CKR_OK, F->C_SignInit(h, &sha256, priv));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_SignUpdate(h, NULL, 5));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_SignFinal(h, sig, &len));
    EXPECT(CKR_OK, F->C_SignInit(h, &sha256, priv));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_Sign(h, NULL, 5, sig, &len));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_Sign(h, data, 5, sig, &len));
    EXPECT(CKR_OK, F->C_SignInit(h, &raw, priv));
    EXPECT(CKR_DATA_LEN_RANGE, F->C_Sign(h, NULL, 0, sig, &len));
    EXPECT(CKR_OK, F->C_SignInit(h, &raw, priv));
    len = sizeof sig;
    EXPECT(CKR_OK, F->C_Sign(h, data, 245, sig, &len));
    EXPECT(CKR_OK, F->C_VerifyInit(h, &raw, pub));
    EXPECT(CKR_OK, F->C_Verify(h, data, 245, sig, 256));
    EXPECT(CKR_OK, F->C_VerifyInit(h, &raw, pub));
    EXPECT(CKR_DATA_LEN_RANGE, F->C_Verify(h, data, 246, sig, 256));

    /* Context-specific login needs an active operation; the operation survives it. */
    EXPECT(CKR_OK, F->C_SignInit(h, &sha256, priv));
    EXPECT(CKR_OK, login(h, CKU_CONTEXT_SPECIFIC, pin));
    len = sizeof sig;
    EXPECT(CKR_OK, F->C_Sign(h, data, 0, sig, &len));
    /* Wrong session state: the operation was initialised, then the user logged out. */
    EXPECT(CKR_OK, F->C_SignInit(h, &sha256, priv));
    EXPECT(CKR_OK, F->C_Logout(h));
    EXPECT(CKR_USER_NOT_LOGGED_IN, F->C_Sign(h, data, 32, sig, &len));
    EXPECT(CKR_USER_NOT_LOGGED_IN, F->C_SignInit(h, &sha256, priv));
    EXPECT(CKR_OK, login(h, CKU_USER, pin));
    EXPECT(CKR_OK, F->C_SignInit(h, &sha256, priv));
    EXPECT(CKR_OK, F->C_SessionCancel(h, CKF_SIGN));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_Sign(h, data, 32, sig, &len));
    EXPECT(CKR_OK, F->C_Logout(h));
}

static void crypto(void)
{
    CK_SESSION_HANDLE a, s;
    EXPECT(CKR_OK, F->C_OpenSession(auth_slot, CKF_SERIAL_SESSION, NULL, NULL, &a));
    EXPECT(CKR_OK, F->C_OpenSession(sign_slot, CKF_SERIAL_SESSION, NULL, NULL, &s));
    digest(a);
    sign_and_verify(a, auth_slot, AUTH_PIN);
    sign_and_verify(s, sign_slot, SIGN_PIN);

    /* What the card cannot do. */
    CK_MECHANISM raw = {CKM_RSA_PKCS, NULL, 0};
    CK_BYTE buf[300];
    CK_ULONG len = sizeof buf;
    CK_OBJECT_HANDLE obj;
    CK_ATTRIBUTE t = {CKA_LABEL, (void *)"x", 1};
    EXPECT(CKR_ARGUMENTS_BAD, F->C_EncryptInit(a, NULL, 1));
    EXPECT(CKR_MECHANISM_INVALID, F->C_EncryptInit(a, &raw, 1));
    EXPECT(CKR_MECHANISM_INVALID, F->C_DecryptInit(a, &raw, 1));
    EXPECT(CKR_MECHANISM_INVALID, F->C_SignRecoverInit(a, &raw, 1));
    EXPECT(CKR_MECHANISM_INVALID, F->C_VerifyRecoverInit(a, &raw, 1));
    EXPECT(CKR_MECHANISM_INVALID, F->C_WrapKey(a, &raw, 1, 1, buf, &len));
    EXPECT(CKR_MECHANISM_INVALID, F->C_UnwrapKey(a, &raw, 1, buf, 4, &t, 1, &obj));
    EXPECT(CKR_MECHANISM_INVALID, F->C_DeriveKey(a, &raw, 1, &t, 1, &obj));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_Encrypt(a, buf, 4, buf, &len));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_EncryptUpdate(a, buf, 4, buf, &len));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_EncryptFinal(a, buf, &len));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_Decrypt(a, buf, 4, buf, &len));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_DecryptUpdate(a, buf, 4, buf, &len));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_DecryptFinal(a, buf, &len));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_SignRecover(a, buf, 4, buf, &len));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_VerifyRecover(a, buf, 4, buf, &len));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_DigestEncryptUpdate(a, buf, 4, buf, &len));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_DecryptDigestUpdate(a, buf, 4, buf, &len));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_SignEncryptUpdate(a, buf, 4, buf, &len));
    EXPECT(CKR_OPERATION_NOT_INITIALIZED, F->C_DecryptVerifyUpdate(a, buf, 4, buf, &len));
    /* Random numbers from the operating system (docs/conformance.md). */
    EXPECT(CKR_RANDOM_SEED_NOT_SUPPORTED, F->C_SeedRandom(a, buf, 4));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_SeedRandom(a, NULL, 4));
    EXPECT(CKR_OK, F->C_GenerateRandom(a, buf, 4));
    EXPECT(CKR_OK, F->C_GenerateRandom(a, buf, 0));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_GenerateRandom(a, NULL, 0));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_GenerateRandom(a, NULL, 4));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_GenerateRandom(0xBAD, NULL, 4));
    /* Argument errors before the token's write protection. */
    EXPECT(CKR_ARGUMENTS_BAD, F->C_GenerateKey(a, NULL, NULL, 0, NULL));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_GenerateKeyPair(a, NULL, NULL, 0, NULL, 0, NULL, NULL));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_DeriveKey(a, NULL, 1, NULL, 0, NULL));
    EXPECT(CKR_ARGUMENTS_BAD, F->C_WrapKey(a, NULL, 1, 1, NULL, NULL));
    EXPECT(CKR_FUNCTION_NOT_PARALLEL, F->C_GetFunctionStatus(a));
    EXPECT(CKR_FUNCTION_NOT_PARALLEL, F->C_CancelFunction(a));
    EXPECT(CKR_FUNCTION_NOT_SUPPORTED, F->C_MessageSignInit(a, &raw, 1));
    EXPECT(CKR_FUNCTION_NOT_SUPPORTED, F->C_SignMessage(a, NULL, 0, buf, 4, buf, &len));
    EXPECT(CKR_FUNCTION_NOT_SUPPORTED, F->C_MessageEncryptInit(a, &raw, 1));
    EXPECT(CKR_FUNCTION_NOT_SUPPORTED, F->C_MessageVerifyFinal(a));
    EXPECT(CKR_OK, F->C_SessionCancel(a, 0));
    EXPECT(CKR_OK, F->C_SessionCancel(a, ~(CK_FLAGS)0));
    EXPECT(CKR_OK, F->C_CloseSession(a));
    EXPECT(CKR_OK, F->C_CloseSession(s));
}

/* ----- 8. C_Finalize with open sessions, then again -------------------------------------------- */

static void finalize_and_reinitialize(void)
{
    CK_SESSION_HANDLE a, a2;
    EXPECT(CKR_OK, F->C_OpenSession(auth_slot, CKF_SERIAL_SESSION, NULL, NULL, &a));
    EXPECT(CKR_OK, login(a, CKU_USER, AUTH_PIN));
    CK_OBJECT_HANDLE priv = find_one(a, CKO_PRIVATE_KEY);
    CK_MECHANISM sha256 = {CKM_SHA256_RSA_PKCS, NULL, 0};
    EXPECT(CKR_OK, F->C_SignInit(a, &sha256, priv));
    EXPECT(CKR_OK, F->C_Finalize(NULL));
    quiet_section = 1;
    every_function(CKR_CRYPTOKI_NOT_INITIALIZED);
    quiet_section = 0;
    EXPECT(CKR_OK, F->C_Initialize(NULL));
    CK_SESSION_INFO si;
    EXPECT(CKR_SESSION_HANDLE_INVALID, F->C_GetSessionInfo(a, &si));
    EXPECT(CKR_SESSION_HANDLE_INVALID, F->C_Sign(a, (CK_BYTE *)"x", 1, NULL, &si.flags));
    CK_ULONG n = 4;
    CK_SLOT_ID slots[4];
    EXPECT(CKR_OK, F->C_GetSlotList(CK_TRUE, slots, &n));
    EXPECT(CKR_OK, F->C_OpenSession(auth_slot, CKF_SERIAL_SESSION, NULL, NULL, &a2));
    CHECK(a2 != a); /* session handles are never reused */
    CHECK(session_state(a2) == CKS_RO_PUBLIC_SESSION); /* C_Finalize logged out */
    EXPECT(CKR_OK, login(a2, CKU_USER, AUTH_PIN));
    CK_ULONG size;
    EXPECT(CKR_OBJECT_HANDLE_INVALID, F->C_GetObjectSize(a2, priv, &size)); /* not reused */
    EXPECT(CKR_OK, F->C_CloseSession(a2));
}

/* ----- 9. fork: the child must initialise its own copy ------------------------------------------ */

static void fork_child(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        CK_ULONG n = 0;
        CK_INFO info;
        int bad = 0;
        bad |= F->C_GetInfo(&info) != CKR_CRYPTOKI_NOT_INITIALIZED;
        bad |= F->C_GetSlotList(CK_FALSE, NULL, &n) != CKR_CRYPTOKI_NOT_INITIALIZED;
        bad |= F->C_Initialize(NULL) != CKR_OK;
        bad |= F->C_GetSlotList(CK_TRUE, NULL, &n) != CKR_OK || n != 2;
        bad |= F->C_Finalize(NULL) != CKR_OK;
        _exit(bad ? 1 : 0);
    }
    int status = 0;
    tried += 5;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The parent is untouched. */
    CK_INFO info;
    EXPECT(CKR_OK, F->C_GetInfo(&info));
}

/* Without threads (NSS's flags) the card is held by a card-link helper process, a child of the
 * parent (docs/conformance.md, "No threads"). A forked child must not use the parent's helper:
 * it initialises its own copy, which starts its own helper, and the parent's link still works. */
static void fork_child_without_threads(void)
{
    CK_C_INITIALIZE_ARGS a;
    CK_SESSION_HANDLE h;
    CK_TOKEN_INFO ti;
    memset(&a, 0, sizeof a);
    a.flags = CKF_LIBRARY_CANT_CREATE_OS_THREADS | CKF_OS_LOCKING_OK;
    EXPECT(CKR_OK, F->C_Finalize(NULL));
    EXPECT(CKR_OK, F->C_Initialize(&a));
    EXPECT(CKR_OK, F->C_GetTokenInfo(auth_slot, &ti)); /* the parent's helper holds the card */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        CK_INFO info;
        CK_SESSION_HANDLE c;
        int bad = 0;
        bad |= F->C_GetInfo(&info) != CKR_CRYPTOKI_NOT_INITIALIZED;
        bad |= F->C_Initialize(&a) != CKR_OK;
        bad |= F->C_OpenSession(auth_slot, CKF_SERIAL_SESSION, NULL, NULL, &c) != CKR_OK;
        bad |= login(c, CKU_USER, AUTH_PIN) != CKR_OK;
        bad |= F->C_Finalize(NULL) != CKR_OK;
        _exit(bad ? 1 : 0);
    }
    int status = 0;
    tried += 5;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The parent's helper still serves the parent: a VERIFY goes through it. */
    EXPECT(CKR_OK, F->C_OpenSession(auth_slot, CKF_SERIAL_SESSION, NULL, NULL, &h));
    EXPECT(CKR_OK, login(h, CKU_USER, AUTH_PIN));
    EXPECT(CKR_OK, F->C_Logout(h));
    EXPECT(CKR_OK, F->C_CloseSession(h));
    EXPECT(CKR_OK, F->C_Finalize(NULL));
    EXPECT(CKR_OK, F->C_Initialize(NULL));
}

/* ----- 10. the card removed and inserted (needs the harness's control socket) ----------------- */

static int card_ctl(const char *what)
{
    const char *vc = getenv("JPKI_VC"), *control = getenv("JPKI_TEST_CONTROL");
    if (!vc)
        vc = getenv("JPKI_TEST_CARD_BIN");
    if (!vc || !control)
        return -1;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' ctl --control '%s' %s >/dev/null", vc, control, what);
    return system(cmd);
}

static int wait_tokens(CK_ULONG want)
{
    for (int i = 0; i < 100; i++) {
        CK_ULONG n = 0;
        if (F->C_GetSlotList(CK_TRUE, NULL, &n) == CKR_OK && n == want)
            return 1;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static void removal(void)
{
    CK_SESSION_HANDLE a, old;
    CK_TOKEN_INFO ti;
    CK_SESSION_INFO si;
    CK_BYTE sig[256];
    CK_ULONG len = sizeof sig;
    CK_MECHANISM sha256 = {CKM_SHA256_RSA_PKCS, NULL, 0};
    EXPECT(CKR_OK, F->C_OpenSession(auth_slot, CKF_SERIAL_SESSION, NULL, NULL, &old));
    EXPECT(CKR_OK, login(old, CKU_USER, AUTH_PIN));
    CK_OBJECT_HANDLE priv = find_one(old, CKO_PRIVATE_KEY);
    EXPECT(CKR_OK, F->C_SignInit(old, &sha256, priv));
    if (card_ctl("remove") != 0) {
        printf("# JPKI_VC / JPKI_TEST_CONTROL not set: removal checks skipped\n");
        EXPECT(CKR_OK, F->C_CloseSession(old));
        return;
    }
    CHECK(wait_tokens(0));
    EXPECT(CKR_TOKEN_NOT_PRESENT, F->C_GetTokenInfo(auth_slot, &ti));
    EXPECT(CKR_TOKEN_NOT_PRESENT, F->C_OpenSession(auth_slot, CKF_SERIAL_SESSION, NULL, NULL, &a));
    EXPECT(CKR_TOKEN_NOT_PRESENT, F->C_GetMechanismList(sign_slot, NULL, &len));
    CK_SLOT_INFO slot_info;
    EXPECT(CKR_OK, F->C_GetSlotInfo(auth_slot, &slot_info));
    CHECK(!(slot_info.flags & CKF_TOKEN_PRESENT));
    /* The sessions of the removed card are gone. */
    EXPECT(CKR_SESSION_HANDLE_INVALID, F->C_Sign(old, (CK_BYTE *)"x", 1, sig, &len));
    EXPECT(CKR_SESSION_HANDLE_INVALID, F->C_GetSessionInfo(old, &si));
    EXPECT(CKR_SESSION_HANDLE_INVALID, F->C_CloseSession(old));
    CK_SLOT_ID ev = ~0UL;
    EXPECT(CKR_OK, F->C_WaitForSlotEvent(CKF_DONT_BLOCK, &ev, NULL));
    CHECK(ev == auth_slot || ev == sign_slot);
    CHECK(card_ctl("insert") == 0);
    CHECK(wait_tokens(2));
    EXPECT(CKR_OK, F->C_OpenSession(auth_slot, CKF_SERIAL_SESSION, NULL, NULL, &a));
    CHECK(session_state(a) == CKS_RO_PUBLIC_SESSION); /* a new card is not logged in */
    EXPECT(CKR_KEY_HANDLE_INVALID, F->C_SignInit(a, &sha256, priv)); /* the old card's key */
    EXPECT(CKR_OK, login(a, CKU_USER, AUTH_PIN));
    priv = find_one(a, CKO_PRIVATE_KEY);
    EXPECT(CKR_OK, F->C_SignInit(a, &sha256, priv));
    len = sizeof sig;
    EXPECT(CKR_OK, F->C_Sign(a, (CK_BYTE *)"abc", 3, sig, &len));
    EXPECT(CKR_OK, F->C_CloseSession(a));
}

/* ----- main ------------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    int do_fork = 1;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-fork") == 0)
            do_fork = 0;
        else
            path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "usage: %s MODULE.so [--no-fork]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return 2;
    }

    section("function lists and interfaces");
    lists_and_interfaces(lib);
    section("every function before C_Initialize");
    every_function(CKR_CRYPTOKI_NOT_INITIALIZED);
    section("C_Initialize arguments");
    initialize_arguments();
    section("info, slots, tokens, mechanisms");
    slots_and_tokens();
    section("sessions and invalid session handles");
    sessions();
    section("login, PIN formats and retry flags");
    login_and_pins();
    section("objects and garbage templates");
    objects();
    section("session objects");
    session_objects();
    section("digest, sign, verify, unsupported operations");
    crypto();
    section("C_Finalize with open sessions");
    finalize_and_reinitialize();
    if (do_fork) {
        section("fork");
        fork_child();
        section("fork without threads (card-link helper)");
        fork_child_without_threads();
    }
    section("card removed and inserted");
    removal();
    section("final C_Finalize");
    EXPECT(CKR_OK, F->C_Finalize(NULL));
    section(NULL);
    dlclose(lib);

    printf("calls tried: %lu, mismatches: %lu\n", tried, mismatches);
    return mismatches ? 1 : 0;
}
