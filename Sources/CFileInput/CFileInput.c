#include "CFileInput.h"
#include <zlib.h>
#include <zstd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/mman.h>

// MARK: SIGBUS guard

enum { slotCount = 64 };

struct GuardSlot {
    _Atomic(uintptr_t) base;  // 0: free
    _Atomic(size_t) length;
};

static struct GuardSlot slots[slotCount];
volatile int CFileInput_faultedFlags[slotCount];
static struct sigaction previousAction;
static pthread_once_t installOnce = PTHREAD_ONCE_INIT;
static int installed;
static uintptr_t pageSize;

static void onBus(int signal, siginfo_t *info, void *context) {
    uintptr_t address = (uintptr_t)info->si_addr;
    for (int index = 0; index < slotCount; index++) {
        uintptr_t base = atomic_load(&slots[index].base);
        size_t length = atomic_load(&slots[index].length);
        if (base == 0 || address < base || address - base >= length) continue;
        // Past the end of the shrunken file: zeroes in place of the page, and the reader stops
        // at the flag before it uses them. mmap is a plain system call here.
        void *page = (void *)(address & ~(pageSize - 1));
        if (mmap(page, pageSize, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) break;
        CFileInput_faultedFlags[index] = 1;
        return;
    }
    // Not ours: the previous disposition takes it when the instruction faults again.
    (void)context;
    sigaction(signal, &previousAction, NULL);
}

static void install(void) {
    pageSize = (uintptr_t)sysconf(_SC_PAGESIZE);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = onBus;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    installed = sigaction(SIGBUS, &action, &previousAction) == 0;
}

int CFileInput_guardMapping(const void *base, size_t length) {
    pthread_once(&installOnce, install);
    if (!installed || base == NULL || length == 0) return -1;
    for (int index = 0; index < slotCount; index++) {
        uintptr_t expected = 0;
        if (atomic_compare_exchange_strong(&slots[index].base, &expected, (uintptr_t)1)) {
            CFileInput_faultedFlags[index] = 0;
            atomic_store(&slots[index].length, length);
            atomic_store(&slots[index].base, (uintptr_t)base);
            return index;
        }
    }
    return -1;
}

void CFileInput_unguardMapping(int slot) {
    if (slot < 0 || slot >= slotCount) return;
    atomic_store(&slots[slot].length, 0);
    atomic_store(&slots[slot].base, 0);
}

int CFileInput_mappingFaulted(int slot) {
    return slot >= 0 && slot < slotCount && CFileInput_faultedFlags[slot] != 0;
}

// MARK: Decompression

struct CFileInput_Decompressor {
    int kind;
    int atBoundary;
    int started;
    z_stream zlib;
    ZSTD_DStream *zstd;
    const char *error;
};

CFileInput_Decompressor *CFileInput_decompressorCreate(int kind) {
    CFileInput_Decompressor *decompressor = calloc(1, sizeof *decompressor);
    if (decompressor == NULL) return NULL;
    decompressor->kind = kind;
    decompressor->atBoundary = 1;
    if (kind == CFileInput_gzip) {
        if (inflateInit2(&decompressor->zlib, 15 + 16) != Z_OK) {  // gzip wrapper only
            free(decompressor);
            return NULL;
        }
    } else {
        decompressor->zstd = ZSTD_createDStream();
        if (decompressor->zstd == NULL || ZSTD_isError(ZSTD_initDStream(decompressor->zstd))) {
            ZSTD_freeDStream(decompressor->zstd);
            free(decompressor);
            return NULL;
        }
    }
    return decompressor;
}

void CFileInput_decompressorFree(CFileInput_Decompressor *decompressor) {
    if (decompressor == NULL) return;
    if (decompressor->kind == CFileInput_gzip) {
        inflateEnd(&decompressor->zlib);
    } else {
        ZSTD_freeDStream(decompressor->zstd);
    }
    free(decompressor);
}

long CFileInput_decompress(
    CFileInput_Decompressor *decompressor, const void *input, size_t inputLength, size_t *inputUsed,
    void *output, size_t outputCapacity) {
    *inputUsed = 0;
    size_t produced = 0;
    if (decompressor->kind == CFileInput_gzip) {
        z_stream *stream = &decompressor->zlib;
        while (produced < outputCapacity) {
            if (decompressor->atBoundary) {
                if (*inputUsed == inputLength) break;
                // The first member, or the next one of a concatenation.
                if (decompressor->started && inflateReset(stream) != Z_OK) {
                    decompressor->error = "gzip: cannot restart";
                    return -1;
                }
                decompressor->atBoundary = 0;
                decompressor->started = 1;
            }
            size_t chunkIn = inputLength - *inputUsed, chunkOut = outputCapacity - produced;
            stream->next_in = (Bytef *)input + *inputUsed;
            stream->avail_in = chunkIn > UINT32_MAX ? UINT32_MAX : (uInt)chunkIn;
            stream->next_out = (Bytef *)output + produced;
            stream->avail_out = chunkOut > UINT32_MAX ? UINT32_MAX : (uInt)chunkOut;
            uInt availIn = stream->avail_in, availOut = stream->avail_out;
            int status = inflate(stream, Z_NO_FLUSH);
            *inputUsed += availIn - stream->avail_in;
            produced += availOut - stream->avail_out;
            if (status == Z_STREAM_END) {
                decompressor->atBoundary = 1;
            } else if (status == Z_BUF_ERROR) {
                break;  // no progress possible: needs more input
            } else if (status != Z_OK) {
                decompressor->error = stream->msg != NULL ? stream->msg : "corrupt gzip data";
                return -1;
            } else if (availIn == stream->avail_in && availOut == stream->avail_out) {
                break;
            }
        }
        return (long)produced;
    }
    ZSTD_inBuffer in = {input, inputLength, 0};
    ZSTD_outBuffer out = {output, outputCapacity, 0};
    while (out.pos < out.size) {
        if (decompressor->atBoundary && in.pos == in.size) break;
        size_t inBefore = in.pos, outBefore = out.pos;
        size_t hint = ZSTD_decompressStream(decompressor->zstd, &out, &in);
        if (ZSTD_isError(hint)) {
            decompressor->error = ZSTD_getErrorName(hint);
            *inputUsed = in.pos;
            return -1;
        }
        decompressor->atBoundary = hint == 0;
        if (in.pos == inBefore && out.pos == outBefore) break;
    }
    *inputUsed = in.pos;
    return (long)out.pos;
}

int CFileInput_decompressorAtBoundary(const CFileInput_Decompressor *decompressor) {
    return decompressor->atBoundary;
}

const char *CFileInput_decompressorError(const CFileInput_Decompressor *decompressor) {
    return decompressor->error != NULL ? decompressor->error : "corrupt data";
}
