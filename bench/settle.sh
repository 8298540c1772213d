# Sourced by the benchmark scripts (bench/run.sh, bench/quick.sh, scripts/fips-test.sh).
#
# settle FILE DIR: before a timed run, a sync (nothing of the previous run is left to write
# back), then a file of FILE's size is written into the page cache (in DIR) and deleted
# unwritten, so the next run writes its output into memory the kernel freed a moment ago.
# On a virtual machine whose host reclaims the guest's free memory (the project machine: free
# pages are handed back after about 2 s), writing into long-free pages costs several times
# more system time than into just-freed ones; without this, what ran before decided the
# result: a decrypt right after its encrypt (which used up the recently freed memory) took
# 2-4 s for 1 GiB, the same decrypt after a freed file 0.6-1.7 s.
settle() {
  sync
  cp "$1" "$2/scratch"
  rm -f "$2/scratch"
}
