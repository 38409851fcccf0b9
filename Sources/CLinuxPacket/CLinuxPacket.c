#define _GNU_SOURCE
#include "CLinuxPacket.h"
#include <sys/prctl.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <sched.h>

void CLinuxPacket_setThreadName(const char *name) {
    prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}

int CLinuxPacket_setBatchScheduling(void) {
    struct sched_param parameters = {0};
    return sched_setscheduler(0, SCHED_BATCH, &parameters);
}

int CLinuxPacket_setupRing(int fd, uint32_t blockSize, uint32_t blockCount, uint32_t frameSize,
                           uint32_t retireTimeoutMilliseconds) {
    int version = TPACKET_V3;
    if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof(version)) != 0) return -1;
    struct tpacket_req3 req;
    memset(&req, 0, sizeof(req));
    req.tp_block_size = blockSize;
    req.tp_block_nr = blockCount;
    req.tp_frame_size = frameSize;
    req.tp_frame_nr = (uint32_t)(((uint64_t)blockSize * blockCount) / frameSize);
    req.tp_retire_blk_tov = retireTimeoutMilliseconds;
    req.tp_sizeof_priv = 0;
    req.tp_feature_req_word = 0;
    return setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req));
}

int CLinuxPacket_bind(int fd, int ifindex) {
    struct sockaddr_ll address;
    memset(&address, 0, sizeof(address));
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = ifindex;
    return bind(fd, (struct sockaddr *)&address, sizeof(address));
}

int CLinuxPacket_joinFanout(int fd, uint16_t groupID, uint16_t typeAndFlags) {
    uint32_t argument = (uint32_t)groupID | ((uint32_t)typeAndFlags << 16);
    return setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &argument, sizeof(argument));
}

int CLinuxPacket_setFanoutProgram(int fd, const struct sock_filter *program, uint16_t length) {
    struct sock_fprog fprog = { .len = length, .filter = (struct sock_filter *)program };
    return setsockopt(fd, SOL_PACKET, PACKET_FANOUT_DATA, &fprog, sizeof(fprog));
}

int CLinuxPacket_attachFilter(int fd, const struct sock_filter *program, uint16_t length) {
    struct sock_fprog fprog = { .len = length, .filter = (struct sock_filter *)program };
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog));
}

int CLinuxPacket_addPromiscuousMembership(int fd, int ifindex) {
    struct packet_mreq request;
    memset(&request, 0, sizeof(request));
    request.mr_ifindex = ifindex;
    request.mr_type = PACKET_MR_PROMISC;
    return setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &request, sizeof(request));
}

int CLinuxPacket_statistics(int fd, uint32_t *packets, uint32_t *drops, uint32_t *freezes) {
    struct tpacket_stats_v3 stats;
    socklen_t length = sizeof(stats);
    memset(&stats, 0, sizeof(stats));
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &stats, &length) != 0) return -1;
    *packets = stats.tp_packets;
    *drops = stats.tp_drops;
    *freezes = stats.tp_freeze_q_cnt;
    return 0;
}

int CLinuxPacket_blockSignals(const int *signals, int count) {
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) sigaddset(&set, signals[i]);
    return pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int CLinuxPacket_waitSignal(const int *signals, int count, int timeoutMilliseconds) {
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) sigaddset(&set, signals[i]);
    struct timespec timeout = { timeoutMilliseconds / 1000, (long)(timeoutMilliseconds % 1000) * 1000000L };
    int received = sigtimedwait(&set, NULL, &timeout);
    if (received < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    return received;
}

int CLinuxPacket_fanoutGroupID(int fd) {
    uint32_t value = 0;
    socklen_t length = sizeof(value);
    if (getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &value, &length) != 0) return -1;
    return (int)(value & 0xffff);
}

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

int CLinuxPacket_ignoreOutgoing(int fd) {
    int one = 1;
    return setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
}
