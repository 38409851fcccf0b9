#ifndef SPAN_COLLECTOR_CLINUXPACKET_H
#define SPAN_COLLECTOR_CLINUXPACKET_H
// Linux AF_PACKET definitions for Swift: the kernel headers' structs and constants as they are,
// plus small helpers for what Swift cannot import (macros, unions) or must not do itself
// (the block status word is shared with the kernel: only atomic acquire/release touch it).
#include <stdint.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <net/if.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <linux/filter.h>
#include <poll.h>
#include <fcntl.h>
#include <unistd.h>
#include <signal.h>
#include <pthread.h>

/// `TPACKET_ALIGN(x)`: frame header alignment inside a ring block.
static inline uint32_t CLinuxPacket_tpacketAlign(uint32_t x) { return TPACKET_ALIGN(x); }

/// Names the calling thread (visible in top -H, /proc/PID/task/*/comm).
void CLinuxPacket_setThreadName(const char *name);

/// Puts the calling thread in SCHED_BATCH: a wake-up of it never preempts the running thread.
/// Returns 0 or -1 (errno set).
int CLinuxPacket_setBatchScheduling(void);

// MARK: TPACKET_V3 ring blocks

/// The block's status word, loaded with acquire ordering: TP_STATUS_USER means the kernel has
/// handed the block (and every frame in it) to user space.
static inline uint32_t CLinuxPacket_blockStatus(const void *block) {
    const struct tpacket_block_desc *desc = (const struct tpacket_block_desc *)block;
    return __atomic_load_n(&desc->hdr.bh1.block_status, __ATOMIC_ACQUIRE);
}

/// Gives the block back to the kernel (release ordering: all our reads of it happen before).
static inline void CLinuxPacket_releaseBlock(void *block) {
    struct tpacket_block_desc *desc = (struct tpacket_block_desc *)block;
    __atomic_store_n(&desc->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
}

static inline uint32_t CLinuxPacket_blockPacketCount(const void *block) {
    return ((const struct tpacket_block_desc *)block)->hdr.bh1.num_pkts;
}

static inline uint32_t CLinuxPacket_blockFirstPacketOffset(const void *block) {
    return ((const struct tpacket_block_desc *)block)->hdr.bh1.offset_to_first_pkt;
}

/// One frame of a block, flattened.
typedef struct {
    uint32_t nextOffset;
    uint32_t seconds;
    uint32_t nanoseconds;
    uint32_t capturedLength;
    uint32_t wireLength;
    uint32_t status;
    uint16_t macOffset;
    uint16_t vlanTCI;
    uint16_t vlanTPID;
} CLinuxPacket_Frame;

static inline CLinuxPacket_Frame CLinuxPacket_frame(const void *header) {
    const struct tpacket3_hdr *h = (const struct tpacket3_hdr *)header;
    CLinuxPacket_Frame f;
    f.nextOffset = h->tp_next_offset;
    f.seconds = h->tp_sec;
    f.nanoseconds = h->tp_nsec;
    f.capturedLength = h->tp_snaplen;
    f.wireLength = h->tp_len;
    f.status = h->tp_status;
    f.macOffset = h->tp_mac;
    f.vlanTCI = h->hv1.tp_vlan_tci;
    f.vlanTPID = h->hv1.tp_vlan_tpid;
    return f;
}

// MARK: socket options with structs

/// Sets up a TPACKET_V3 receive ring. Returns 0 or -1 with errno.
int CLinuxPacket_setupRing(int fd, uint32_t blockSize, uint32_t blockCount, uint32_t frameSize,
                           uint32_t retireTimeoutMilliseconds);

/// Binds a packet socket to an interface for all protocols.
int CLinuxPacket_bind(int fd, int ifindex);

/// Joins (or creates) fanout group `groupID` with `typeAndFlags` (PACKET_FANOUT_* | flags).
int CLinuxPacket_joinFanout(int fd, uint16_t groupID, uint16_t typeAndFlags);

/// Attaches a classic BPF program as the fanout demultiplexer (PACKET_FANOUT_DATA).
int CLinuxPacket_setFanoutProgram(int fd, const struct sock_filter *program, uint16_t length);

/// Attaches a classic BPF program as the socket filter (SO_ATTACH_FILTER).
int CLinuxPacket_attachFilter(int fd, const struct sock_filter *program, uint16_t length);

/// The id of the fanout group the socket belongs to (after a join with PACKET_FANOUT_FLAG_UNIQUEID
/// the kernel chose it). Returns -1 with errno on failure.
int CLinuxPacket_fanoutGroupID(int fd);

/// Does not deliver frames this host sends (PACKET_IGNORE_OUTGOING, Linux 4.20+).
int CLinuxPacket_ignoreOutgoing(int fd);

/// Puts the interface into promiscuous mode for as long as the socket lives.
int CLinuxPacket_addPromiscuousMembership(int fd, int ifindex);

/// Reads and resets the ring statistics (PACKET_STATISTICS).
int CLinuxPacket_statistics(int fd, uint32_t *packets, uint32_t *drops, uint32_t *freezes);

/// Blocks signals in the calling thread (and threads it starts later), to be taken with
/// `CLinuxPacket_waitSignal`. Returns 0 or an error number.
int CLinuxPacket_blockSignals(const int *signals, int count);
/// Waits up to `timeoutMilliseconds` for one of `signals`; returns it, 0 on timeout, -1 on error.
int CLinuxPacket_waitSignal(const int *signals, int count, int timeoutMilliseconds);

#endif
