#ifndef SPAN_COLLECTOR_CLINUXPACKET_H
#define SPAN_COLLECTOR_CLINUXPACKET_H
// Linux AF_PACKET definitions for Swift: the kernel headers' structs and constants as they are,
// plus a few helpers for the macros Swift cannot import.
#include <stdint.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <net/if.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <linux/filter.h>
#include <poll.h>
#include <fcntl.h>
#include <unistd.h>

/// `TPACKET_ALIGN(x)`: frame header alignment inside a ring block.
static inline uint32_t CLinuxPacket_tpacketAlign(uint32_t x) { return TPACKET_ALIGN(x); }

/// Size of the part of `struct tpacket3_hdr` the kernel fills before the MAC header.
uint32_t CLinuxPacket_tpacket3HeaderLength(void);

/// Names the calling thread (visible in top -H, /proc/PID/task/*/comm).
void CLinuxPacket_setThreadName(const char *name);

#endif
