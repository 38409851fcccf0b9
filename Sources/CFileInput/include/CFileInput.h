#ifndef SPAN_COLLECTOR_CFILEINPUT_H
#define SPAN_COLLECTOR_CFILEINPUT_H
// Capture-file input helpers for what Swift cannot do itself: a SIGBUS guard for mapped
// inputs (a file that shrinks under its mapping) and gzip/zstd stream decompression.
#include <stddef.h>
#include <stdint.h>

// MARK: SIGBUS guard

/// Registers the mapping [base, base + length): a SIGBUS inside it (the file shrank below the
/// page) no longer kills the process. The handler maps a page of zeroes over the faulting page
/// and raises the mapping's flag, which the reader checks per record (`CFileInput_touch`).
/// Returns a slot for the other calls, or -1 (no slot free, or the handler could not be
/// installed: the mapping is then unguarded).
int CFileInput_guardMapping(const void *base, size_t length);

/// Forgets the mapping of `slot` (before it is unmapped).
void CFileInput_unguardMapping(int slot);

/// Whether a fault hit the mapping of `slot` since it was registered.
int CFileInput_mappingFaulted(int slot);

/// The fault flags of the guard's slots (read inline on the per-record path).
extern volatile int CFileInput_faultedFlags[64];

/// Reads the byte at `address` (so a fault, if any, happens now) and returns whether the
/// mapping of `slot` is still intact (no fault so far). The read is volatile: never elided.
static inline int CFileInput_touch(const void *address, int slot) {
    (void)*(const volatile uint8_t *)address;
    return slot < 0 || slot >= 64 || CFileInput_faultedFlags[slot] == 0;
}

// MARK: Decompression

typedef struct CFileInput_Decompressor CFileInput_Decompressor;

enum { CFileInput_gzip = 1, CFileInput_zstd = 2 };

/// A streaming decompressor for `kind` (concatenated gzip members / zstd frames included), or
/// NULL when out of memory.
CFileInput_Decompressor *CFileInput_decompressorCreate(int kind);
void CFileInput_decompressorFree(CFileInput_Decompressor *decompressor);

/// Decompresses from `input` (`inputLength` bytes; `*inputUsed` is set to how many were
/// consumed) into `output` (up to `outputCapacity` bytes). Returns the bytes produced, or -1 on
/// corrupt data (`CFileInput_decompressorError` says why).
long CFileInput_decompress(
    CFileInput_Decompressor *decompressor, const void *input, size_t inputLength, size_t *inputUsed,
    void *output, size_t outputCapacity);

/// Whether the data so far ends exactly at the end of a gzip member / zstd frame (else an input
/// ending now is cut).
int CFileInput_decompressorAtBoundary(const CFileInput_Decompressor *decompressor);

/// Why the last call failed.
const char *CFileInput_decompressorError(const CFileInput_Decompressor *decompressor);

#endif
