/*
 * A PKCS#11 interposer for tests: forwards every call to the real module named by
 * FAULT_REAL_MODULE and, while the file named by FAULT_CONTROL exists, makes chosen calls fail:
 *   "device"  → cryptographic, random and object-search calls return CKR_DEVICE_ERROR
 *   "session" → the same calls return CKR_SESSION_HANDLE_INVALID
 *   "absent"  → as "device", and C_OpenSession / C_Login / C_GetSessionInfo return
 *               CKR_TOKEN_NOT_PRESENT (the token is gone until the file is removed)
 *   "general" → C_Decrypt returns CKR_GENERAL_ERROR (what SoftHSM also answers for a bad
 *               GCM tag), everything else works
 *   "general-all" → every call "device" fails, and C_GenerateKey and C_CopyObject, return
 *               CKR_GENERAL_ERROR (what SoftHSM answers when it runs out of file descriptors)
 *   "stale-once" → the next C_EncryptInit returns CKR_KEY_HANDLE_INVALID (a handle gone
 *               stale), then the control file is removed: one fault, then healthy
 * Built by tests/faults.rs with: cc -shared -fPIC -o libpkcs11fault.so pkcs11_fault.c -ldl
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

typedef unsigned long CK_ULONG;
typedef CK_ULONG CK_RV;
typedef struct { unsigned char major, minor; } CK_VERSION;

/* CK_FUNCTION_LIST: a version followed by the 68 PKCS#11 2.x function pointers in the order
 * of the standard. Indices used here (checked against dlsym at load time where the module's
 * exports are its table's functions): */
enum {
    F_GETFUNCTIONLIST = 3, F_OPENSESSION = 12, F_GETSESSIONINFO = 15, F_LOGIN = 18,
    F_FINDOBJECTSINIT = 26, F_ENCRYPTINIT = 29, F_ENCRYPT = 30, F_DECRYPTINIT = 33,
    F_DECRYPT = 34, F_SIGNINIT = 42, F_GENERATERANDOM = 64, F_COUNT = 68,
    F_COPYOBJECT = 21, F_GENERATEKEY = 58
};
typedef struct { CK_VERSION version; void *fn[F_COUNT]; } FUNCTION_LIST;

#define CKR_DEVICE_ERROR 0x30UL
#define CKR_SESSION_HANDLE_INVALID 0xB3UL
#define CKR_TOKEN_NOT_PRESENT 0xE0UL
#define CKR_GENERAL_ERROR 0x05UL
#define CKR_KEY_HANDLE_INVALID 0x60UL

static FUNCTION_LIST *real;
static FUNCTION_LIST wrapped;

/* 0 = no fault, 1 = device, 2 = session, 3 = absent, 4 = general (decrypt),
 * 5 = general-all, 6 = stale-once */
static int mode(void) {
    const char *path = getenv("FAULT_CONTROL");
    if (!path) return 0;
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char buf[32] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    if (strncmp(buf, "session", 7) == 0) return 2;
    if (strncmp(buf, "absent", 6) == 0) return 3;
    if (strncmp(buf, "general-all", 11) == 0) return 5;
    if (strncmp(buf, "general", 7) == 0) return 4;
    if (strncmp(buf, "stale-once", 10) == 0) return 6;
    return 1;
}

static CK_RV op_fault(void) {
    switch (mode()) {
    case 1: case 3: return CKR_DEVICE_ERROR;
    case 2: return CKR_SESSION_HANDLE_INVALID;
    case 5: return CKR_GENERAL_ERROR;
    default: return 0;
    }
}

typedef CK_RV (*fn3)(CK_ULONG, void *, CK_ULONG);
typedef CK_RV (*fn5)(CK_ULONG, void *, CK_ULONG, void *, void *);
typedef CK_RV (*fn2)(CK_ULONG, void *);
typedef CK_RV (*fn4)(CK_ULONG, CK_ULONG, void *, CK_ULONG);
typedef CK_RV (*fn_open)(CK_ULONG, CK_ULONG, void *, void *, void *);
typedef CK_RV (*fn_init)(CK_ULONG, void *, CK_ULONG);

#define FAULTED(expr) do { CK_RV rv_ = op_fault(); if (rv_) return rv_; return (expr); } while (0)

static CK_RV w_encrypt_init(CK_ULONG s, void *m, CK_ULONG k) {
    if (mode() == 6) {
        remove(getenv("FAULT_CONTROL"));
        return CKR_KEY_HANDLE_INVALID;
    }
    FAULTED(((fn_init)real->fn[F_ENCRYPTINIT])(s, m, k));
}
typedef CK_RV (*fn_genkey)(CK_ULONG, void *, void *, CK_ULONG, void *);
typedef CK_RV (*fn_copy)(CK_ULONG, CK_ULONG, void *, CK_ULONG, void *);
static CK_RV w_generate_key(CK_ULONG s, void *m, void *t, CK_ULONG c, void *ph) {
    if (mode() == 5) return CKR_GENERAL_ERROR;
    return ((fn_genkey)real->fn[F_GENERATEKEY])(s, m, t, c, ph);
}
static CK_RV w_copy_object(CK_ULONG s, CK_ULONG o, void *t, CK_ULONG c, void *ph) {
    if (mode() == 5) return CKR_GENERAL_ERROR;
    return ((fn_copy)real->fn[F_COPYOBJECT])(s, o, t, c, ph);
}
static CK_RV w_encrypt(CK_ULONG s, void *d, CK_ULONG l, void *o, void *ol) { FAULTED(((fn5)real->fn[F_ENCRYPT])(s, d, l, o, ol)); }
static CK_RV w_decrypt_init(CK_ULONG s, void *m, CK_ULONG k) { FAULTED(((fn_init)real->fn[F_DECRYPTINIT])(s, m, k)); }
static CK_RV w_decrypt(CK_ULONG s, void *d, CK_ULONG l, void *o, void *ol) {
    if (mode() == 4) return CKR_GENERAL_ERROR;
    FAULTED(((fn5)real->fn[F_DECRYPT])(s, d, l, o, ol));
}
static CK_RV w_sign_init(CK_ULONG s, void *m, CK_ULONG k) { FAULTED(((fn_init)real->fn[F_SIGNINIT])(s, m, k)); }
static CK_RV w_random(CK_ULONG s, void *d, CK_ULONG l) { FAULTED(((fn3)real->fn[F_GENERATERANDOM])(s, d, l)); }
static CK_RV w_find_init(CK_ULONG s, void *t, CK_ULONG c) { FAULTED(((fn3)real->fn[F_FINDOBJECTSINIT])(s, t, c)); }
static CK_RV w_open(CK_ULONG slot, CK_ULONG flags, void *app, void *notify, void *ph) {
    if (mode() == 3) return CKR_TOKEN_NOT_PRESENT;
    return ((fn_open)real->fn[F_OPENSESSION])(slot, flags, app, notify, ph);
}
static CK_RV w_login(CK_ULONG s, CK_ULONG u, void *pin, CK_ULONG len) {
    if (mode() == 3) return CKR_TOKEN_NOT_PRESENT;
    return ((fn4)real->fn[F_LOGIN])(s, u, pin, len);
}
static CK_RV w_session_info(CK_ULONG s, void *info) {
    if (mode() == 3) return CKR_TOKEN_NOT_PRESENT;
    return ((fn2)real->fn[F_GETSESSIONINFO])(s, info);
}

typedef CK_RV (*get_list_fn)(FUNCTION_LIST **);

CK_RV C_GetFunctionList(FUNCTION_LIST **out) {
    if (!out) return 0x07UL; /* CKR_ARGUMENTS_BAD */
    if (!real) {
        const char *path = getenv("FAULT_REAL_MODULE");
        void *lib = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
        get_list_fn get = lib ? (get_list_fn)dlsym(lib, "C_GetFunctionList") : NULL;
        if (!get || get(&real) != 0 || !real) return CKR_GENERAL_ERROR;
        /* The table order must match the module's exported symbols. */
        const struct { int i; const char *name; } check[] = {
            {F_GETFUNCTIONLIST, "C_GetFunctionList"}, {F_OPENSESSION, "C_OpenSession"},
            {F_GETSESSIONINFO, "C_GetSessionInfo"}, {F_LOGIN, "C_Login"},
            {F_FINDOBJECTSINIT, "C_FindObjectsInit"}, {F_ENCRYPTINIT, "C_EncryptInit"},
            {F_ENCRYPT, "C_Encrypt"}, {F_DECRYPTINIT, "C_DecryptInit"}, {F_DECRYPT, "C_Decrypt"},
            {F_SIGNINIT, "C_SignInit"}, {F_GENERATERANDOM, "C_GenerateRandom"},
            {F_GENERATEKEY, "C_GenerateKey"}, {F_COPYOBJECT, "C_CopyObject"}};
        /* Modules whose exported symbols are the table's own functions (SoftHSM) are checked
         * entry by entry; others (Kryoptic exports wrappers) must at least declare a 2.x or
         * 3.x table, whose first 68 entries are the 2.x ones in the standard's order. */
        int exported = dlsym(lib, "C_GetFunctionList") == real->fn[F_GETFUNCTIONLIST];
        if (!exported && real->version.major != 2 && real->version.major != 3) {
            fprintf(stderr, "pkcs11_fault: unknown function table version %d\n", real->version.major);
            real = NULL;
            return CKR_GENERAL_ERROR;
        }
        for (size_t c = 0; exported && c < sizeof check / sizeof check[0]; c++) {
            if (dlsym(lib, check[c].name) != real->fn[check[c].i]) {
                fprintf(stderr, "pkcs11_fault: function table mismatch at %s\n", check[c].name);
                real = NULL;
                return CKR_GENERAL_ERROR;
            }
        }
        wrapped = *real;
        wrapped.fn[F_ENCRYPTINIT] = (void *)w_encrypt_init;
        wrapped.fn[F_ENCRYPT] = (void *)w_encrypt;
        wrapped.fn[F_DECRYPTINIT] = (void *)w_decrypt_init;
        wrapped.fn[F_DECRYPT] = (void *)w_decrypt;
        wrapped.fn[F_SIGNINIT] = (void *)w_sign_init;
        wrapped.fn[F_GENERATERANDOM] = (void *)w_random;
        wrapped.fn[F_GENERATEKEY] = (void *)w_generate_key;
        wrapped.fn[F_COPYOBJECT] = (void *)w_copy_object;
        wrapped.fn[F_FINDOBJECTSINIT] = (void *)w_find_init;
        wrapped.fn[F_OPENSESSION] = (void *)w_open;
        wrapped.fn[F_LOGIN] = (void *)w_login;
        wrapped.fn[F_GETSESSIONINFO] = (void *)w_session_info;
        wrapped.fn[F_GETFUNCTIONLIST] = (void *)C_GetFunctionList;
    }
    *out = &wrapped;
    return 0;
}
