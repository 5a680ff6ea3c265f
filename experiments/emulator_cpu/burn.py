#!/usr/bin/env python3
"""Burns MS of one thread's CPU time REPS times, each after GAP ms asleep, and prints the wall time it took (p10 / p50 /
p90): inside a CPU-quota cgroup, how far a short invocation runs ahead of its share. Usage: burn.py MS REPS GAP"""
import sys
import time
ms=float(sys.argv[1]); reps=int(sys.argv[2]); gap=float(sys.argv[3])
out=[]
for _ in range(reps):
    time.sleep(gap/1000)
    w0=time.perf_counter(); c0=time.thread_time()
    while (time.thread_time()-c0)*1000<ms: pass
    out.append((time.perf_counter()-w0)*1000)
out.sort()
print("cpu %.0f ms: wall p10 %.1f p50 %.1f p90 %.1f"%(ms,out[len(out)//10],out[len(out)//2],out[9*len(out)//10]))
