package org.apache.samza.azure.testing.job;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;

/**
 * Writes the files a processor JVM reads at start: its Samza config ({@code .properties}) and the
 * logback config {@link ProcessorJvms} points every JVM to.
 */
public final class ProcessorFiles {
  /** The logback config's name in the processors' directory. */
  static final String LOGBACK = "logback.xml";

  private ProcessorFiles() {}

  /**
   * Writes the config shared by all processors ({@code dir/processor.properties}, returned) and a
   * logback config logging ours and {@code infoLoggers} at INFO, everything else at WARN.
   */
  public static Path writeShared(Path dir, Properties props, String... infoLoggers)
      throws IOException {
    Path configFile = dir.resolve("processor.properties");
    write(configFile, props, "written by the test harness");
    StringBuilder loggers = new StringBuilder();
    for (String name : new String[] {"org.apache.samza.azure", "samza_azure_coordinator"}) {
      loggers.append("<logger name=\"").append(name).append("\" level=\"INFO\"/>");
    }
    for (String name : infoLoggers) {
      loggers.append("<logger name=\"").append(name).append("\" level=\"INFO\"/>");
    }
    Files.write(
        dir.resolve(LOGBACK),
        ("<configuration><appender name=\"OUT\" class=\"ch.qos.logback.core.ConsoleAppender\">"
                + "<encoder><pattern>%d{HH:mm:ss.SSS} %-5level [%thread] %logger{30} - %msg%n"
                + "</pattern></encoder></appender>"
                + loggers
                + "<root level=\"WARN\"><appender-ref ref=\"OUT\"/></root></configuration>")
            .getBytes(StandardCharsets.UTF_8));
    return configFile;
  }

  /**
   * Writes processor {@code id}'s own config ({@code dir/<id>.properties}, returned), for a
   * processor whose config differs from the shared one; {@code note} ends the file's comment.
   */
  public static Path writeOwn(Path dir, String id, Properties props, String note)
      throws IOException {
    Path file = dir.resolve(id + ".properties");
    write(file, props, "written by the test harness for " + id + note);
    return file;
  }

  private static void write(Path file, Properties props, String comment) throws IOException {
    try (OutputStream out = Files.newOutputStream(file)) {
      props.store(out, comment);
    }
  }
}
