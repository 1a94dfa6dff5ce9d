package org.apache.samza.azure.testing.job;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.samza.Partition;
import org.apache.samza.SamzaException;
import org.apache.samza.config.Config;
import org.apache.samza.metrics.MetricsRegistry;
import org.apache.samza.system.IncomingMessageEnvelope;
import org.apache.samza.system.OutgoingMessageEnvelope;
import org.apache.samza.system.SystemAdmin;
import org.apache.samza.system.SystemConsumer;
import org.apache.samza.system.SystemFactory;
import org.apache.samza.system.SystemProducer;
import org.apache.samza.system.SystemStreamMetadata;
import org.apache.samza.system.SystemStreamMetadata.SystemStreamPartitionMetadata;
import org.apache.samza.system.SystemStreamPartition;
import org.apache.samza.util.BlockingEnvelopeMap;

/**
 * A real Samza input system over files, shared by processes on one machine: stream {@code s} of
 * system {@code x} is the directory {@code systems.x.dir}/s, and partition n is the file n in it,
 * one message per line. The offset of a message is its line number. Consumers tail the files, so
 * lines appended while the job runs are delivered.
 */
// The three-argument factory methods are deprecated but still abstract in Samza 1.8.
@SuppressWarnings("deprecation")
public final class FileSystemFactory implements SystemFactory {
  @Override
  public SystemConsumer getConsumer(String system, Config config, MetricsRegistry registry) {
    return new Consumer(dir(system, config), registry);
  }

  @Override
  public SystemProducer getProducer(String system, Config config, MetricsRegistry registry) {
    // Samza builds a producer for every system; this one refuses to send.
    return new SystemProducer() {
      @Override
      public void start() {}

      @Override
      public void stop() {}

      @Override
      public void register(String source) {}

      @Override
      public void send(String source, OutgoingMessageEnvelope envelope) {
        throw new UnsupportedOperationException("the file system is input only");
      }

      @Override
      public void flush(String source) {}
    };
  }

  @Override
  public SystemAdmin getAdmin(String system, Config config) {
    return new Admin(dir(system, config));
  }

  static Path dir(String system, Config config) {
    String key = "systems." + system + ".dir";
    String dir = config.get(key);
    if (dir == null) {
      throw new SamzaException(key + " must name the directory holding the streams");
    }
    return Paths.get(dir);
  }

  static Path partitionFile(Path dir, SystemStreamPartition ssp) {
    return dir.resolve(ssp.getStream())
        .resolve(String.valueOf(ssp.getPartition().getPartitionId()));
  }

  static long lineCount(Path file) {
    try {
      return Files.exists(file) ? Files.lines(file).count() : 0;
    } catch (IOException e) {
      throw new SamzaException("cannot read " + file, e);
    }
  }

  static final class Admin implements SystemAdmin {
    private final Path dir;

    Admin(Path dir) {
      this.dir = dir;
    }

    @Override
    public Map<SystemStreamPartition, String> getOffsetsAfter(
        Map<SystemStreamPartition, String> offsets) {
      Map<SystemStreamPartition, String> next = new HashMap<>();
      offsets.forEach((ssp, o) -> next.put(ssp, String.valueOf(Long.parseLong(o) + 1)));
      return next;
    }

    @Override
    public Map<String, SystemStreamMetadata> getSystemStreamMetadata(Set<String> streams) {
      Map<String, SystemStreamMetadata> out = new HashMap<>();
      for (String stream : streams) {
        String[] files = dir.resolve(stream).toFile().list();
        if (files == null) {
          throw new SamzaException("stream " + stream + " does not exist under " + dir);
        }
        Map<Partition, SystemStreamPartitionMetadata> parts = new HashMap<>();
        for (String f : files) {
          long lines = lineCount(dir.resolve(stream).resolve(f));
          parts.put(
              new Partition(Integer.parseInt(f)),
              new SystemStreamPartitionMetadata(
                  "0", lines == 0 ? null : String.valueOf(lines - 1), String.valueOf(lines)));
        }
        out.put(stream, new SystemStreamMetadata(stream, parts));
      }
      return out;
    }

    @Override
    public Integer offsetComparator(String a, String b) {
      // Null means "not comparable" to Samza.
      if (a == null || b == null) {
        return null;
      }
      return Long.compare(Long.parseLong(a), Long.parseLong(b));
    }
  }

  /** Tails each registered partition file from its starting line. */
  static final class Consumer extends BlockingEnvelopeMap {
    private final Path dir;
    private final Map<SystemStreamPartition, Long> next = new ConcurrentHashMap<>();
    private volatile boolean running;
    private Thread reader;

    Consumer(Path dir, MetricsRegistry registry) {
      super(registry);
      this.dir = dir;
    }

    @Override
    public void register(SystemStreamPartition ssp, String offset) {
      super.register(ssp, offset);
      next.put(ssp, Long.parseLong(offset));
    }

    @Override
    public void start() {
      running = true;
      reader = new Thread(this::readLoop, "file-system-consumer");
      reader.setDaemon(true);
      reader.start();
    }

    @Override
    public void stop() {
      running = false;
      if (reader != null) {
        reader.interrupt();
      }
    }

    private void readLoop() {
      Map<SystemStreamPartition, Long> positions = new HashMap<>();
      try {
        while (running) {
          for (Map.Entry<SystemStreamPartition, Long> e : next.entrySet()) {
            SystemStreamPartition ssp = e.getKey();
            long line = e.getValue();
            Path file = partitionFile(dir, ssp);
            if (!Files.exists(file)) {
              continue;
            }
            try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "r")) {
              long skip = line;
              long pos = positions.getOrDefault(ssp, 0L);
              if (pos == 0 && skip > 0) {
                while (skip > 0 && raf.readLine() != null) {
                  skip--;
                }
              } else {
                raf.seek(pos);
              }
              String text;
              while ((text = raf.readLine()) != null) {
                String message =
                    new String(text.getBytes(StandardCharsets.ISO_8859_1), StandardCharsets.UTF_8);
                put(ssp, new IncomingMessageEnvelope(ssp, String.valueOf(line), null, message));
                line++;
              }
              positions.put(ssp, raf.getFilePointer());
              next.put(ssp, line);
            }
          }
          Thread.sleep(20);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      } catch (IOException e) {
        throw new SamzaException("reading " + dir, e);
      }
    }
  }
}
