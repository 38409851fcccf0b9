#ifndef SPAN_COLLECTOR_CPCAP_SHIM_H
#define SPAN_COLLECTOR_CPCAP_SHIM_H
#include <pcap/pcap.h>
#endif
