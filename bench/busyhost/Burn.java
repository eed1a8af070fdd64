// bench/busyhost.sh's Java program: Burn.hotA (60%) and Burn.hotB (40%),
// CPU-MS of work every PERIOD-MS. Usage: java Burn CPU-MS PERIOD-MS
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;

public final class Burn {
    private static long state = 88172645463325252L;

    private static long spin(long x, int n) {
        for (int i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
        }
        return x;
    }

    static void hotA() { state = spin(state, 300000); }

    static void hotB() { state = spin(state, 200000); }

    public static void main(String[] args) throws InterruptedException {
        double ms = args.length > 0 ? Double.parseDouble(args[0]) : 5;
        long periodNanos = (long) ((args.length > 1 ? Double.parseDouble(args[1]) : 100) * 1e6);
        ThreadMXBean bean = ManagementFactory.getThreadMXBean();
        long next = System.nanoTime();
        while (true) {
            long end = bean.getCurrentThreadCpuTime() + (long) (ms * 1e6);
            while (bean.getCurrentThreadCpuTime() < end) {
                hotA();
                hotB();
            }
            next += periodNanos;
            long wait = next - System.nanoTime();
            if (wait > 0) {
                Thread.sleep(wait / 1000000, (int) (wait % 1000000));
            }
        }
    }
}
