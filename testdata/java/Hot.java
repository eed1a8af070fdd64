// Hot spends its time in JIT-compiled Java: main -> alpha/beta -> spin, for
// the given wall-clock seconds. Ember's tests record it run with
// -XX:+DumpPerfMapAtExit, whose perf map appears only when the JVM exits.
//
// Build: javac -d testdata/java testdata/java/Hot.java (Java 17)
// Usage: java -cp testdata/java Hot seconds
public class Hot {
    static long sink;

    static long spin(long x, int n) {
        for (int i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
        }
        return x;
    }

    static void alpha() { sink += spin(sink | 1, 200000); }

    static void beta() { sink += spin(sink | 3, 200000); }

    public static void main(String[] args) {
        long end = System.nanoTime() + (long) (Double.parseDouble(args[0]) * 1e9);
        while (System.nanoTime() < end) {
            alpha();
            alpha();
            beta();
        }
        System.out.println(sink);
    }
}
