#ifndef SPAN_COLLECTOR_CZSTD_SHIM_H
#define SPAN_COLLECTOR_CZSTD_SHIM_H
#include <zstd.h>
#endif
