#include "CLinuxPacket.h"
#include <sys/prctl.h>

uint32_t CLinuxPacket_tpacket3HeaderLength(void) {
    return (uint32_t)TPACKET_ALIGN(sizeof(struct tpacket3_hdr));
}

void CLinuxPacket_setThreadName(const char *name) {
    prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}
